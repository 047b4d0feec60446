package wiring

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
)

// VethPair wires a to b with a veth pair: each end appears in its own netns
// under a random temporary name (so concurrent callers never collide, and
// the final names never appear in any other netns), gets its addresses,
// then its final name, then is brought up. An MTU of 0 means
// DefaultVethMTU.
//
// The input is validated before anything is created. On failure nothing
// is left behind. Errors match ErrInvalid, ErrBadAddress, ErrNetnsGone or
// ErrExists where those apply.
func VethPair(ctx context.Context, a, b Endpoint) (err error) {
	addrsA, err := a.parse()
	if err != nil {
		return fmt.Errorf("veth pair: %w", err)
	}
	addrsB, err := b.parse()
	if err != nil {
		return fmt.Errorf("veth pair: %w", err)
	}
	if a.Netns == b.Netns && a.Name == b.Name {
		return fmt.Errorf("veth pair: both ends are %s: %w", a, ErrInvalid)
	}
	ca, cb, err := openPair(ctx, a, b)
	if err != nil {
		return fmt.Errorf("veth pair %s - %s: %w", a, b, err)
	}
	defer ca.Close()
	defer cb.Close()

	tmpA, tmpB := tempName(), tempName()
	idxA, idxB, err := createVeth(ca, cb, tmpA, tmpB, vethMTU(a.MTU), vethMTU(b.MTU))
	if err != nil {
		return fmt.Errorf("veth pair %s - %s: %w", a, b, err)
	}
	defer func() {
		if err != nil {
			// Deleting one end deletes its peer.
			err = joinRollback(err, ca.deleteIndex(idxA))
		}
	}()
	if err := configureEnd(ctx, ca, idxA, tmpA, a, addrsA); err != nil {
		return fmt.Errorf("veth pair: %w", err)
	}
	if err := configureEnd(ctx, cb, idxB, tmpB, b, addrsB); err != nil {
		return fmt.Errorf("veth pair: %w", err)
	}
	return nil
}

// openPair opens both netns and checks the final names are free in them.
func openPair(ctx context.Context, a, b Endpoint) (*nsConn, *nsConn, error) {
	ca, err := openNS(ctx, a.Netns)
	if err != nil {
		return nil, nil, err
	}
	cb, err := openNS(ctx, b.Netns)
	if err == nil {
		err = ca.checkFree(a.Name)
	}
	if err == nil {
		err = cb.checkFree(b.Name)
	}
	if err != nil {
		ca.Close()
		if cb != nil {
			cb.Close()
		}
		return nil, nil, err
	}
	return ca, cb, nil
}

// createVeth creates the pair with tmpA in ca's netns and tmpB directly in
// cb's netns (IFLA_NET_NS_FD on the peer), and returns both indexes.
func createVeth(ca, cb *nsConn, tmpA, tmpB string, mtuA, mtuB int) (int, int, error) {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: tmpA, MTU: mtuA},
		PeerName:      tmpB,
		PeerMTU:       uint32(mtuB),
		PeerNamespace: cb.fd(),
	}
	if err := ca.h.LinkAdd(veth); err != nil {
		return 0, 0, fmt.Errorf("create veth %s (peer %s in netns %s) in netns %s: %w", tmpA, tmpB, cb.path, ca.path, err)
	}
	idxA, err := indexOf(ca, tmpA)
	if err != nil {
		return 0, 0, joinRollback(err, ca.deleteName(tmpA))
	}
	idxB, err := indexOf(cb, tmpB)
	if err != nil {
		return 0, 0, joinRollback(err, ca.deleteIndex(idxA))
	}
	return idxA, idxB, nil
}

func vethMTU(mtu int) int {
	if mtu == 0 {
		return DefaultVethMTU
	}
	return mtu
}
