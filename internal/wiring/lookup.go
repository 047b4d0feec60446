package wiring

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpRetries bounds the retries of an address dump the kernel interrupted.
const dumpRetries = 5

// LinkInfo is what Lookup found of a link, for a CNI CHECK to compare with
// what was recorded.
type LinkInfo struct {
	// Name is the interface name.
	Name string
	// Kind is the link type: "veth", "vxlan", ...
	Kind string
	// Index is the interface index in its netns.
	Index int
	// MTU is the interface MTU.
	MTU int
	// Addresses are the interface addresses in CIDR notation, in kernel
	// order: all of them, IPv6 link-local ones included (those configured
	// and those the kernel made). Compare with HasAddress.
	Addresses []string
	// AdminUp says the interface is set up (IFF_UP).
	AdminUp bool
	// OperUp says the interface has carrier (IFF_LOWER_UP); for a veth
	// this needs the peer to be up too.
	OperUp bool
	// OperState is the kernel's operational state ("up", "down",
	// "lowerlayerdown", "unknown" — vxlan reports "unknown").
	OperState string
	// Ours says ratchet created the interface (its alias is an
	// OwnerAlias); Owner is then the owner recorded there.
	Ours  bool
	Owner string
	// VNI, Remote and Port are set for vxlan links only.
	VNI    int
	Remote net.IP
	Port   int
}

// Lookup reports the link ifname in the netns at netnsPath. A missing link
// gives an error matching ErrNotFound; a missing netns one matching both
// ErrNetnsGone and ErrNotFound.
func Lookup(ctx context.Context, netnsPath, ifname string) (*LinkInfo, error) {
	if err := ValidateName(ifname); err != nil {
		return nil, fmt.Errorf("look up in netns %s: %w", netnsPath, err)
	}
	c, err := openNS(ctx, netnsPath)
	if err != nil {
		if errors.Is(err, ErrNetnsGone) {
			err = fmt.Errorf("%w: %w", err, ErrNotFound)
		}
		return nil, fmt.Errorf("look up %s: %w", ifname, err)
	}
	defer c.Close()
	l, err := c.h.LinkByName(ifname)
	if err != nil {
		if isLinkNotFound(err) {
			return nil, fmt.Errorf("%s in netns %s: %w", ifname, netnsPath, ErrNotFound)
		}
		return nil, fmt.Errorf("look up %s in netns %s: %w", ifname, netnsPath, err)
	}
	addrs, err := listAddrs(c, l)
	if err != nil {
		return nil, err
	}
	return linkInfo(l, addrs), nil
}

// listAddrs returns the link's addresses as CIDR strings, retrying dumps
// the kernel interrupted.
func listAddrs(c *nsConn, l netlink.Link) ([]string, error) {
	var (
		list []netlink.Addr
		err  error
	)
	for range dumpRetries {
		list, err = c.h.AddrList(l, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s in netns %s: %w", l.Attrs().Name, c.path, err)
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.IPNet.String())
	}
	return out, nil
}

func linkInfo(l netlink.Link, addrs []string) *LinkInfo {
	at := l.Attrs()
	info := &LinkInfo{
		Name:      at.Name,
		Kind:      l.Type(),
		Index:     at.Index,
		MTU:       at.MTU,
		Addresses: addrs,
		AdminUp:   at.Flags&net.FlagUp != 0,
		OperUp:    at.RawFlags&unix.IFF_LOWER_UP != 0,
		OperState: at.OperState.String(),
	}
	info.Owner, info.Ours = strings.CutPrefix(at.Alias, aliasPrefix)
	if vx, ok := l.(*netlink.Vxlan); ok {
		info.VNI = vx.VxlanId
		info.Remote = vx.Group
		info.Port = vx.Port
	}
	return info
}

// Matches compares the link with the endpoint it was wired from: name, MTU
// (when ep.MTU is not 0), every address of ep present, and set up. The
// error lists every difference.
func (li *LinkInfo) Matches(ep Endpoint) error {
	var diffs []error
	if li.Name != ep.Name {
		diffs = append(diffs, fmt.Errorf("name %q, want %q", li.Name, ep.Name))
	}
	if ep.MTU != 0 && li.MTU != ep.MTU {
		diffs = append(diffs, fmt.Errorf("MTU %d, want %d", li.MTU, ep.MTU))
	}
	addrs, err := parseAddresses(ep.Addresses)
	if err != nil {
		return fmt.Errorf("compare %s: %w", ep, err)
	}
	for _, a := range addrs {
		if !li.HasAddress(a.IPNet.String()) {
			diffs = append(diffs, fmt.Errorf("address %s missing", a.IPNet))
		}
	}
	if !li.AdminUp {
		diffs = append(diffs, errors.New("not up"))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%s differs: %w", ep, errors.Join(diffs...))
	}
	return nil
}

// HasAddress reports whether the link has the address cidr with its prefix
// length, compared as addresses, not as text: "2001:DB8::1/64",
// "2001:db8:0::1/64" and an IPv4 address written as IPv4-mapped IPv6 match
// what the kernel reports. A cidr that does not parse matches nothing.
func (li *LinkInfo) HasAddress(cidr string) bool {
	want, err := netip.ParsePrefix(cidr)
	if err != nil {
		return false
	}
	want = netip.PrefixFrom(want.Addr().Unmap(), unmappedBits(want))
	return slices.ContainsFunc(li.Addresses, func(s string) bool {
		got, err := netip.ParsePrefix(s)
		return err == nil && got.Addr().Unmap() == want.Addr() && unmappedBits(got) == want.Bits()
	})
}

// unmappedBits is p's prefix length, counted in IPv4 bits for an
// IPv4-mapped IPv6 prefix.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return p.Bits() - 96
	}
	return p.Bits()
}

// Remove deletes the interface ifname in the netns at netnsPath if ratchet
// created it (whatever link it belongs to); deleting a veth end deletes its
// peer too. It is idempotent: a missing netns or link is success. An
// interface ratchet did not create is left alone: ErrNotOwned.
func Remove(ctx context.Context, netnsPath, ifname string) error {
	return remove(ctx, netnsPath, ifname, func(info *LinkInfo) bool { return info.Ours })
}

// RemoveOwned is Remove for an interface of owner only: one of another
// owner, or not ratchet's at all, is ErrNotOwned, and stays.
func RemoveOwned(ctx context.Context, netnsPath, ifname, owner string) error {
	return remove(ctx, netnsPath, ifname, func(info *LinkInfo) bool {
		return info.Ours && OwnerAlias(info.Owner) == OwnerAlias(owner)
	})
}

func remove(ctx context.Context, netnsPath, ifname string, mine func(*LinkInfo) bool) error {
	if err := ValidateName(ifname); err != nil {
		return fmt.Errorf("remove in netns %s: %w", netnsPath, err)
	}
	c, err := openNS(ctx, netnsPath)
	if err != nil {
		if errors.Is(err, ErrNetnsGone) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", ifname, err)
	}
	defer c.Close()
	l, err := c.h.LinkByName(ifname)
	if err == nil {
		if info := linkInfo(l, nil); !mine(info) {
			return fmt.Errorf("%s in netns %s is %s: %w", ifname, netnsPath, Holder(info), ErrNotOwned)
		}
		err = c.h.LinkDel(l)
	}
	if err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("remove %s in netns %s: %w", ifname, netnsPath, err)
	}
	return nil
}

// Holder describes who an existing interface belongs to, for messages.
func Holder(info *LinkInfo) string {
	if !info.Ours {
		return fmt.Sprintf("a %s interface ratchet did not create (another plugin's, or the pod's own)", info.Kind)
	}
	return "ratchet's interface of link " + info.Owner
}
