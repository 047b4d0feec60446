package wiring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/ratchet-cni/ratchet/internal/tcbpf"
	"github.com/vishvananda/netlink"
)

// A stitch carries a parked veth end (see Park) to another host: a vxlan
// device in the host netns, and on the clsact ingress hook of each of the
// two a cls_bpf filter whose program redirects every frame to the other's
// egress (bpf_redirect(ifindex, 0)). No Linux bridge is involved, so
// br_netfilter and a FORWARD chain that drops (Docker's) never see the
// frames.
//
// A redirect program is recognised by its tag, the hash the kernel keeps
// of a program's instructions: the target's ifindex is an immediate in
// them, so a filter whose program's tag is the tag of the program
// redirecting to ifindex N redirects to N, and nothing else does. That is
// how Stitch finds a filter already right (and loads nothing), and how
// CheckStitch finds one pointing elsewhere. The program's name, "rsx_"
// and N in decimal, is for people reading bpftool.
const (
	// stitchPrefix starts the name of every stitch vxlan.
	stitchPrefix = "rsx"
	// stitchPriority and stitchHandle place the redirect filter on the
	// clsact ingress hook ("rs"; impair's filter uses 0x7274 on egress).
	stitchPriority uint16 = 0x7273
	stitchHandle   uint32 = 0x7273
	// stitchFilterName is the name (TCA_BPF_NAME) the filter carries.
	stitchFilterName = "ratchet-stitch"
	// stitchProgPrefix starts the redirect program's name; BPF object
	// names hold 15 bytes, enough for the prefix and a 10-digit ifindex.
	stitchProgPrefix = "rsx_"
	// stitchLicense is the program's license; bpf_redirect is not a
	// GPL-only helper, so any string would load.
	stitchLicense = "GPL"
	// maxOwnerLen bounds a link ID given to Stitch, Unstitch and
	// CheckStitch (it is hashed into the names and recorded, cut to the
	// alias's size, in the alias).
	maxOwnerLen = 1024
)

// StitchName is the name of the host-netns vxlan that carries link
// owner's parked veth end across hosts: "rsx" and the 12 hex digits of the
// owner's hash that ParkedName uses (15 bytes).
func StitchName(owner string) string {
	return stitchPrefix + ownerHash(owner)
}

// Stitch carries the parked veth end of link owner (ParkedName(owner), in
// the netns at hostNetns; see Park) to another host: a vxlan
// StitchName(owner) in hostNetns towards opts.Remote, and tc BPF redirects
// between the two (the ingress of each to the egress of the other). Frames
// the surviving pod sends on its veth end leave encapsulated towards
// opts.Remote; frames arriving on the VNI reach that end. The surviving
// end is not touched: it keeps its index, name, addresses and MTU, and
// gets carrier back. The peer host builds an ordinary vxlan end (Vxlan)
// with the same VNI towards this host.
//
// The vxlan is made as Vxlan makes one (opts.VNI, Remote, Local, Parent,
// Port; opts.HostNetns is not used: hostNetns is), without address
// learning (its one remote gets every frame), marked OwnerAlias(owner) so
// that Lookup reports it ratchet's and RemoveOwned removes it. An mtu of 0
// means the parent's MTU minus the encapsulation overhead. IPv6 is
// disabled on both host-side devices: they carry no host address, and the
// host sends nothing onto the link.
//
// Stitch is idempotent. A vxlan already there with the same VNI, port,
// parent and local address is kept: re-pointed in place (as Repoint does)
// when only the remote differs, its MTU set when that differs; one that
// differs otherwise is replaced. A redirect already right is left alone
// (no program is loaded); one pointing elsewhere is replaced atomically.
//
// The input is validated before anything is touched (ErrInvalid,
// ErrBadAddress, ErrMTU). A missing parked end is ErrNotFound, one of
// another link ErrNotOwned, as is a StitchName held by an interface that
// is not ratchet's of owner (left untouched). A VNI taken by another
// vxlan on the port is ErrVNIInUse, a missing underlay ErrNoParent. On
// failure, a vxlan this call created is removed again, with the parked
// end's redirect to it.
func Stitch(ctx context.Context, hostNetns, owner string, mtu int, opts VxlanOptions) (err error) {
	if err := validateStitch(hostNetns, owner); err != nil {
		return fmt.Errorf("stitch: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("stitch link %s: %w", owner, err)
	}
	if mtu != 0 && (mtu < minMTU || mtu > maxMTU) {
		return fmt.Errorf("stitch link %s: MTU %d outside %d..%d: %w", owner, mtu, minMTU, maxMTU, ErrInvalid)
	}
	host, err := openNS(ctx, hostNetns)
	if err != nil {
		return fmt.Errorf("stitch link %s: %w", owner, err)
	}
	defer host.Close()
	parked, err := ownedLink(host, ParkedName(owner), owner)
	if err != nil {
		return fmt.Errorf("stitch link %s: parked end: %w", owner, err)
	}
	if _, ok := parked.(*netlink.Veth); !ok {
		return fmt.Errorf("stitch link %s: %s in netns %s is a %s, not a veth: %w",
			owner, parked.Attrs().Name, hostNetns, parked.Type(), ErrInvalid)
	}
	parent, err := findParent(host, opts)
	if err != nil {
		return fmt.Errorf("stitch link %s: %w", owner, err)
	}
	mtu, err = vxlanMTU(mtu, parent, opts.Remote)
	if err != nil {
		return fmt.Errorf("stitch link %s: %w", owner, err)
	}
	vx, created, err := host.ensureStitchVxlan(owner, parent, mtu, opts)
	if err != nil {
		return fmt.Errorf("stitch link %s: %w", owner, err)
	}
	if created {
		defer func() {
			if err != nil {
				_ = host.h.SetSocketTimeout(cleanupTimeout) // ctx may be done
				rb := errors.Join(host.clearRedirect(parked), host.deleteIndex(vx.Attrs().Index))
				err = joinRollback(err, rb)
			}
		}()
	}
	for _, l := range []netlink.Link{parked, vx} {
		if err := host.disableIPv6(l.Attrs().Name); err != nil {
			return fmt.Errorf("stitch link %s: %w", owner, err)
		}
	}
	if err := host.ensureRedirect(parked, vx.Attrs().Index); err != nil {
		return fmt.Errorf("stitch link %s: %w", owner, err)
	}
	if err := host.ensureRedirect(vx, parked.Attrs().Index); err != nil {
		return fmt.Errorf("stitch link %s: %w", owner, err)
	}
	for _, l := range []netlink.Link{vx, parked} {
		if err := host.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("stitch link %s: set %s up in netns %s: %w", owner, l.Attrs().Name, hostNetns, err)
		}
	}
	return nil
}

// Unstitch undoes Stitch for link owner in the netns at hostNetns: the
// parked end loses its redirect (and its clsact qdisc when nothing else is
// on it) and is set down, so the surviving end loses carrier again, and
// the vxlan StitchName(owner) is removed. The parked end stays, for
// Unpark or another Stitch. Nothing stitched (or nothing there at all, the
// netns included) is success: a parked end that is not stitched is just
// set down. An interface under either name that is not ratchet's of owner
// is left alone: ErrNotOwned.
func Unstitch(ctx context.Context, hostNetns, owner string) error {
	if err := validateStitch(hostNetns, owner); err != nil {
		return fmt.Errorf("unstitch: %w", err)
	}
	host, err := openNS(ctx, hostNetns)
	if errors.Is(err, ErrNetnsGone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unstitch link %s: %w", owner, err)
	}
	defer host.Close()
	if err := host.unstitch(owner); err != nil {
		return fmt.Errorf("unstitch link %s: %w", owner, err)
	}
	return nil
}

// CheckStitch reports how the stitch of link owner in the netns at
// hostNetns differs from what Stitch with opts makes: the parked end and
// the vxlan StitchName(owner) present and ratchet's of owner, the vxlan's
// VNI, remote and port those of opts, both set up, and on the ingress of
// each the redirect to the other. The error names every difference (a
// missing device matches ErrNotFound, another's ErrNotOwned); nil means
// the stitch is as asked. It changes nothing.
func CheckStitch(ctx context.Context, hostNetns, owner string, opts VxlanOptions) error {
	if err := validateStitch(hostNetns, owner); err != nil {
		return fmt.Errorf("check stitch: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("check stitch of link %s: %w", owner, err)
	}
	host, err := openNS(ctx, hostNetns)
	if err != nil {
		return fmt.Errorf("check stitch of link %s: %w", owner, err)
	}
	defer host.Close()
	parked, err := ownedLink(host, ParkedName(owner), owner)
	if err != nil {
		return fmt.Errorf("check stitch of link %s: parked end: %w", owner, err)
	}
	l, err := ownedLink(host, StitchName(owner), owner)
	if err != nil {
		return fmt.Errorf("check stitch of link %s: vxlan: %w", owner, err)
	}
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return fmt.Errorf("check stitch of link %s: %s in netns %s is a %s, not a vxlan", owner, l.Attrs().Name, hostNetns, l.Type())
	}
	var diffs []error
	if vx.VxlanId != opts.VNI {
		diffs = append(diffs, fmt.Errorf("VNI %d, want %d", vx.VxlanId, opts.VNI))
	}
	if !vx.Group.Equal(opts.Remote) {
		diffs = append(diffs, fmt.Errorf("remote %s, want %s", vx.Group, opts.Remote))
	}
	if port := vxlanPort(opts); vx.Port != port {
		diffs = append(diffs, fmt.Errorf("port %d, want %d", vx.Port, port))
	}
	for _, l := range []netlink.Link{vx, parked} {
		if l.Attrs().Flags&net.FlagUp == 0 {
			diffs = append(diffs, fmt.Errorf("%s down", l.Attrs().Name))
		}
	}
	for _, d := range []struct{ from, to netlink.Link }{{parked, vx}, {vx, parked}} {
		if err := host.checkRedirect(d.from, d.to); err != nil {
			diffs = append(diffs, err)
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("stitch %s of link %s in netns %s differs: %w", vx.Name, owner, hostNetns, errors.Join(diffs...))
	}
	return nil
}

// validateStitch checks the netns path and the link ID. Errors match
// ErrInvalid.
func validateStitch(hostNetns, owner string) error {
	switch {
	case hostNetns == "":
		return fmt.Errorf("link %q: empty host netns path: %w", owner, ErrInvalid)
	case owner == "":
		return fmt.Errorf("empty link ID: %w", ErrInvalid)
	case len(owner) > maxOwnerLen:
		return fmt.Errorf("link ID of %d bytes, more than %d: %w", len(owner), maxOwnerLen, ErrInvalid)
	case strings.IndexByte(owner, 0) >= 0:
		return fmt.Errorf("link ID %q holds a NUL byte: %w", owner, ErrInvalid)
	}
	return nil
}

// vxlanPort is the UDP port opts ask for.
func vxlanPort(opts VxlanOptions) int {
	if opts.Port == 0 {
		return DefaultVxlanPort
	}
	return opts.Port
}

// ensureStitchVxlan returns the vxlan StitchName(owner) made as opts ask,
// keeping (and re-pointing) one that can be kept, and whether it created
// it.
func (c *nsConn) ensureStitchVxlan(owner string, parent netlink.Link, mtu int, opts VxlanOptions) (*netlink.Vxlan, bool, error) {
	name := StitchName(owner)
	l, err := ownedLink(c, name, owner)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, false, err
	default:
		if vx, ok := l.(*netlink.Vxlan); ok && keepStitch(vx, parent, opts) {
			if !vx.Group.Equal(opts.Remote) {
				if err := c.changeRemote(vx, opts.Remote); err != nil {
					return nil, false, fmt.Errorf("re-point %s in netns %s to %s: %w", name, c.path, opts.Remote, err)
				}
			}
			if vx.MTU != mtu {
				if err := c.h.LinkSetMTU(vx, mtu); err != nil {
					return nil, false, fmt.Errorf("set MTU of %s in netns %s to %d: %w", name, c.path, mtu, err)
				}
			}
			return vx, false, nil
		}
		if err := c.h.LinkDel(l); err != nil && !isLinkNotFound(err) {
			return nil, false, fmt.Errorf("replace %s in netns %s: %w", name, c.path, err)
		}
	}
	vx, err := c.createStitch(name, owner, parent, mtu, opts)
	if err != nil {
		return nil, false, err
	}
	return vx, true, nil
}

// keepStitch reports whether an existing stitch vxlan can serve opts,
// re-pointed in place if need be: same VNI, port, parent, local address,
// remote address family, and no learning.
func keepStitch(vx *netlink.Vxlan, parent netlink.Link, opts VxlanOptions) bool {
	sameLocal := vx.SrcAddr.Equal(opts.Local) ||
		opts.Local == nil && (vx.SrcAddr == nil || vx.SrcAddr.IsUnspecified())
	return vx.VxlanId == opts.VNI && vx.Port == vxlanPort(opts) &&
		vx.VtepDevIndex == parent.Attrs().Index && sameLocal &&
		(vx.Group.To4() == nil) == (opts.Remote.To4() == nil) && !vx.Learning
}

// createStitch creates the vxlan name in c's netns under a temporary name,
// with IPv6 disabled and owner's alias, then renames it. On failure
// nothing is left.
func (c *nsConn) createStitch(name, owner string, parent netlink.Link, mtu int, opts VxlanOptions) (*netlink.Vxlan, error) {
	tmp := tempName()
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: tmp, MTU: mtu},
		VxlanId:      opts.VNI,
		VtepDevIndex: parent.Attrs().Index,
		Group:        opts.Remote,
		SrcAddr:      opts.Local,
		Port:         vxlanPort(opts),
		Learning:     false,
	}
	if err := c.h.LinkAdd(vx); err != nil {
		if isExist(err) {
			return nil, fmt.Errorf("VNI %d port %d in netns %s: %w", opts.VNI, vx.Port, c.path, ErrVNIInUse)
		}
		return nil, fmt.Errorf("create vxlan %s (VNI %d, parent %s) in netns %s: %w", name, opts.VNI, parent.Attrs().Name, c.path, err)
	}
	idx, err := indexOf(c, tmp)
	if err != nil {
		return nil, joinRollback(err, c.deleteName(tmp))
	}
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx, Name: tmp}}
	err = c.disableIPv6(tmp)
	if err == nil {
		if err = c.h.LinkSetAlias(link, OwnerAlias(owner)); err != nil {
			err = fmt.Errorf("mark %s in netns %s as ratchet's: %w", tmp, c.path, err)
		}
	}
	if err == nil {
		if err = c.h.LinkSetName(link, name); err != nil {
			if isExist(err) {
				err = fmt.Errorf("rename %s to %s in netns %s: %w", tmp, name, c.path, ErrExists)
			} else {
				err = fmt.Errorf("rename %s to %s in netns %s: %w", tmp, name, c.path, err)
			}
		}
	}
	var l netlink.Link
	if err == nil {
		if l, err = c.h.LinkByIndex(idx); err != nil {
			err = fmt.Errorf("look up new %s in netns %s: %w", name, c.path, err)
		}
	}
	if err != nil {
		return nil, joinRollback(err, c.deleteIndex(idx))
	}
	made, ok := l.(*netlink.Vxlan)
	if !ok {
		return nil, joinRollback(fmt.Errorf("new %s in netns %s reads back as a %s", name, c.path, l.Type()), c.deleteIndex(idx))
	}
	return made, nil
}

// disableIPv6 sets disable_ipv6 on the interface. A kernel without IPv6
// (no /proc/sys/net/ipv6) has nothing to disable.
func (c *nsConn) disableIPv6(ifname string) error {
	err := c.setSysctl("ipv6", ifname, "disable_ipv6", "1")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// unstitch removes owner's stitch from c's netns (see Unstitch).
func (c *nsConn) unstitch(owner string) error {
	var errs []error
	parked, err := ownedLink(c, ParkedName(owner), owner)
	switch {
	case err == nil:
		if err := c.clearRedirect(parked); err != nil {
			errs = append(errs, err)
		}
		if err := c.h.LinkSetDown(parked); err != nil && !isLinkNotFound(err) {
			errs = append(errs, fmt.Errorf("set %s down in netns %s: %w", parked.Attrs().Name, c.path, err))
		}
	case !errors.Is(err, ErrNotFound):
		errs = append(errs, fmt.Errorf("parked end: %w", err))
	}
	if err := c.deleteOwned(StitchName(owner), owner); err != nil {
		errs = append(errs, fmt.Errorf("vxlan: %w", err))
	}
	return errors.Join(errs...)
}

// deleteOwned removes ratchet's interface name of link owner from c's
// netns. A missing one is success; one that is not owner's is ErrNotOwned
// and stays.
func (c *nsConn) deleteOwned(name, owner string) error {
	l, err := ownedLink(c, name, owner)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.h.LinkDel(l); err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("remove %s in netns %s: %w", name, c.path, err)
	}
	return nil
}

// redirectInstructions is the program that sends every frame to the
// egress of the interface with index to: return bpf_redirect(to, 0).
func redirectInstructions(to int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, int32(to)),
		asm.Mov.Imm(asm.R2, 0), // flags: egress
		asm.FnRedirect.Call(),
		asm.Return(), // r0: TC_ACT_REDIRECT
	}
}

// loadRedirect loads the redirect program towards ifindex to.
func loadRedirect(to int) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         stitchProgPrefix + strconv.Itoa(to),
		Type:         ebpf.SchedCLS,
		Instructions: redirectInstructions(to),
		License:      stitchLicense,
	})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load BPF redirect to #%d: %w (verifier: %+v)", to, err, verr)
		}
		return nil, fmt.Errorf("load BPF redirect to #%d: %w", to, err)
	}
	return prog, nil
}

// redirectsTo reports whether the filter runs, in direct-action mode, the
// redirect program towards ifindex to (compared by program tag).
func redirectsTo(f *netlink.BpfFilter, to int) bool {
	if f.Tag == "" || !f.DirectAction {
		return false
	}
	ok, err := redirectInstructions(to).HasTag(f.Tag, nativeOrder())
	return err == nil && ok
}

// nativeOrder is the host's byte order as the BPF library accepts it
// (binary.LittleEndian or binary.BigEndian, not binary.NativeEndian).
func nativeOrder() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}

// stitchFilter is the redirect filter on a stitched link's ingress hook.
var stitchFilter = tcbpf.Filter{Parent: netlink.HANDLE_MIN_INGRESS, Handle: stitchHandle, Priority: stitchPriority, Name: stitchFilterName}

// ensureRedirect makes the ingress of from redirect every frame to the
// egress of ifindex to: clsact added when missing, the filter left alone
// when already right, else replaced (atomically) by one running a newly
// loaded program.
func (c *nsConn) ensureRedirect(from netlink.Link, to int) error {
	name := from.Attrs().Name
	f, err := stitchFilter.Find(c.h, from)
	if err != nil {
		return fmt.Errorf("redirect %s in netns %s: %w", name, c.path, err)
	}
	if f != nil && redirectsTo(f, to) {
		return nil
	}
	prog, err := loadRedirect(to)
	if err != nil {
		return fmt.Errorf("redirect %s in netns %s: %w", name, c.path, err)
	}
	defer prog.Close() // the filter keeps its own reference
	if err := stitchFilter.Replace(c.h, from, prog.FD()); err != nil {
		return fmt.Errorf("ingress of %s in netns %s: %w", name, c.path, err)
	}
	return nil
}

// clearRedirect removes the stitch filter from l's ingress, then its
// clsact qdisc when no filter is left on it. Nothing there is success.
func (c *nsConn) clearRedirect(l netlink.Link) error {
	if err := stitchFilter.Remove(c.h, l); err != nil {
		return fmt.Errorf("ingress of %s in netns %s: %w", l.Attrs().Name, c.path, err)
	}
	return nil
}

// checkRedirect reports how the ingress of from differs from a redirect
// to the egress of to.
func (c *nsConn) checkRedirect(from, to netlink.Link) error {
	f, err := stitchFilter.Find(c.h, from)
	switch {
	case err != nil:
		return err
	case f == nil:
		return fmt.Errorf("no redirect filter %s on the ingress of %s", stitchFilterName, from.Attrs().Name)
	case !redirectsTo(f, to.Attrs().Index):
		return fmt.Errorf("redirect filter on the ingress of %s runs BPF program %d (tag %s, direct-action %v), not the redirect to %s (#%d)",
			from.Attrs().Name, f.Id, f.Tag, f.DirectAction, to.Attrs().Name, to.Attrs().Index)
	}
	return nil
}
