package wiring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// SelfNetns is the network namespace of the calling process (the node
// agent's: its host's), for Park and Unpark.
const SelfNetns = "/proc/self/ns/net"

// ParkedName is the name the parked veth end of link owner carries in the
// host netns: "rpk" and 12 hex digits of the owner's hash (15 bytes).
func ParkedName(owner string) string {
	return "rpk" + ownerHash(owner)
}

// ownerHash is the first 12 hex digits of the SHA-256 of owner, the part
// of ParkedName and StitchName that names the link.
func ownerHash(owner string) string {
	sum := sha256.Sum256([]byte(owner))
	return hex.EncodeToString(sum[:6])
}

// Park keeps a same-host veth alive when one of its pods goes away: it
// moves ratchet's end ifname of link owner out of the netns at netnsPath
// into hostNetns, down and renamed ParkedName(owner). The other end stays
// in its pod, without carrier, with its name and addresses, until Unpark
// gives the parked end to the peer's next incarnation (or the other end's
// removal takes it along). A missing end is ErrNotFound, another owner's
// ErrNotOwned, a non-veth ErrInvalid.
func Park(ctx context.Context, netnsPath, ifname, owner, hostNetns string) error {
	return ParkAll(ctx, netnsPath, hostNetns, []ParkEnd{{Name: ifname, Owner: owner}})[0]
}

// ParkEnd is one veth end for ParkAll: its name in the pod and its link.
type ParkEnd struct{ Name, Owner string }

// ParkAll parks several ends of one pod (see Park), opening each netns
// once; it returns one error per end (nil: parked).
func ParkAll(ctx context.Context, netnsPath, hostNetns string, ends []ParkEnd) []error {
	errs := make([]error, len(ends))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	pod, err := openNS(ctx, netnsPath)
	if err != nil {
		return fail(fmt.Errorf("park: %w", err))
	}
	defer pod.Close()
	host, err := openNS(ctx, hostNetns)
	if err != nil {
		return fail(fmt.Errorf("park: %w", err))
	}
	defer host.Close()
	for i, e := range ends {
		errs[i] = park(pod, host, e.Name, e.Owner)
	}
	return errs
}

func park(pod, host *nsConn, ifname, owner string) error {
	if err := ValidateName(ifname); err != nil {
		return fmt.Errorf("park %s: %w", ifname, err)
	}
	l, err := ownedLink(pod, ifname, owner)
	if err != nil {
		return fmt.Errorf("park: %w", err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return fmt.Errorf("park %s in netns %s: a %s, not a veth: %w", ifname, pod.path, l.Type(), ErrInvalid)
	}
	parked := ParkedName(owner)
	if old, err := ownedLink(host, parked, owner); err == nil {
		if err := host.h.LinkDel(old); err != nil && !isLinkNotFound(err) {
			return fmt.Errorf("park %s: remove a stale %s: %w", ifname, parked, err)
		}
	}
	// A stale end may have been stitched to another host (see Stitch).
	if err := host.deleteOwned(StitchName(owner), owner); err != nil && !errors.Is(err, ErrNotOwned) {
		return fmt.Errorf("park %s: remove a stale stitch: %w", ifname, err)
	}
	if err := pod.h.LinkSetDown(l); err != nil {
		return fmt.Errorf("park %s: set down: %w", ifname, err)
	}
	if err := pod.h.LinkSetName(l, parked); err != nil {
		return fmt.Errorf("park %s: rename to %s: %w", ifname, parked, err)
	}
	if err := pod.h.LinkSetNsFd(l, int(host.fd())); err != nil {
		return fmt.Errorf("park %s: move to %s: %w", ifname, host.path, err)
	}
	return nil
}

// Unpark gives the parked end of link ep.Owner (see Park) to the netns of
// ep: moved there, addressed, renamed ep.Name and brought up; the veth's
// other end gets carrier back. ErrNotFound when nothing is parked for the
// link. A stitch of the parked end to another host (see Stitch) is undone
// first: its vxlan removed, and no redirect goes into the pod with the
// end. On failure the end is removed (and the veth with it): the caller
// builds the link anew.
func Unpark(ctx context.Context, ep Endpoint, hostNetns string) (err error) {
	addrs, err := ep.parse()
	if err != nil {
		return fmt.Errorf("unpark: %w", err)
	}
	host, err := openNS(ctx, hostNetns)
	if err != nil {
		return fmt.Errorf("unpark %s: %w", ep, err)
	}
	defer host.Close()
	parked := ParkedName(ep.Owner)
	l, err := ownedLink(host, parked, ep.Owner)
	if err != nil {
		return fmt.Errorf("unpark %s: %w", ep, err)
	}
	pod, err := openNS(ctx, ep.Netns)
	if err == nil {
		defer pod.Close()
		err = pod.checkFree(ep.Name)
	}
	if err != nil {
		return fmt.Errorf("unpark %s: %w", ep, err)
	}
	// Undo a stitch: no redirect goes into the pod with the end, and the
	// vxlan goes (a StitchName held by something not of this link is no
	// stitch of this end, and stays).
	if err := host.clearRedirect(l); err != nil {
		return fmt.Errorf("unpark %s: undo stitch: %w", ep, err)
	}
	if err := host.deleteOwned(StitchName(ep.Owner), ep.Owner); err != nil && !errors.Is(err, ErrNotOwned) {
		return fmt.Errorf("unpark %s: undo stitch: %w", ep, err)
	}
	if err := host.h.LinkSetNsFd(l, int(pod.fd())); err != nil {
		return fmt.Errorf("unpark %s: move: %w", ep, err)
	}
	idx, err := indexOf(pod, parked)
	if err != nil {
		return fmt.Errorf("unpark %s: %w", ep, err)
	}
	if ep.MTU > 0 {
		if err := pod.h.LinkSetMTU(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}}, ep.MTU); err != nil {
			return joinRollback(fmt.Errorf("unpark %s: MTU: %w", ep, err), pod.deleteIndex(idx))
		}
	}
	if err := configureEnd(ctx, pod, idx, parked, ep, addrs); err != nil {
		return joinRollback(fmt.Errorf("unpark: %w", err), pod.deleteIndex(idx))
	}
	return nil
}

// ownedLink finds ratchet's interface name of link owner in c's netns.
func ownedLink(c *nsConn, name, owner string) (netlink.Link, error) {
	l, err := c.h.LinkByName(name)
	if err != nil {
		if isLinkNotFound(err) {
			return nil, fmt.Errorf("%s in netns %s: %w", name, c.path, ErrNotFound)
		}
		return nil, fmt.Errorf("find %s in netns %s: %w", name, c.path, err)
	}
	if info := linkInfo(l, nil); !info.Ours || OwnerAlias(info.Owner) != OwnerAlias(owner) {
		return nil, fmt.Errorf("%s in netns %s is %s: %w", name, c.path, Holder(info), ErrNotOwned)
	}
	return l, nil
}
