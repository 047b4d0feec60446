package wiring

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
)

// beforeRenameKey is the context key of a test's hook that runs just
// before a link gets its final name, to exercise the rollback of a name
// taken in the meantime (a context value, not a package variable, so that
// tests running in parallel cannot see each other's hook).
type beforeRenameKey struct{}

// configureEnd finishes a link that sits under a temporary name in its
// target netns: IPv6 enabled when needed, addresses added, marked with its
// owner's alias, renamed to its
// final name, brought up. A link thus shows its final name only once it is
// addressed. The caller deletes the link when this fails.
func configureEnd(ctx context.Context, c *nsConn, index int, tmp string, ep Endpoint, addrs []*netlink.Addr) error {
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index, Name: tmp}}
	if hasIPv4(addrs) {
		// A gratuitous ARP when the end comes up updates the peer's
		// neighbour entry at once (an end rebuilt for a re-created pod has
		// a new MAC address; the peer would otherwise wait a second).
		if err := c.setSysctl("ipv4", tmp, "arp_notify", "1"); err != nil {
			return fmt.Errorf("configure %s: %w", ep, err)
		}
	}
	if hasIPv6(addrs) {
		if err := c.enableIPv6(tmp); err != nil {
			return fmt.Errorf("configure %s: %w", ep, err)
		}
		// An end is set down (link down, parked) and up again: the kernel
		// drops IPv6 addresses of a device going down unless told not to.
		if err := c.setSysctl("ipv6", tmp, "keep_addr_on_down", "1"); err != nil {
			return fmt.Errorf("configure %s: %w", ep, err)
		}
	}
	for _, a := range addrs {
		if err := c.h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("add address %s to %s: %w", a.IPNet, ep, err)
		}
	}
	if err := c.h.LinkSetAlias(link, OwnerAlias(ep.Owner)); err != nil {
		return fmt.Errorf("mark %s as ratchet's: %w", ep, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("configure %s: %w", ep, err)
	}
	if hook, ok := ctx.Value(beforeRenameKey{}).(func(Endpoint)); ok {
		hook(ep)
	}
	if err := c.h.LinkSetName(link, ep.Name); err != nil {
		if isExist(err) {
			return fmt.Errorf("rename %s to %s: %w", tmp, ep, ErrExists)
		}
		return fmt.Errorf("rename %s to %s: %w", tmp, ep, err)
	}
	if err := c.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", ep, err)
	}
	return nil
}

// indexOf returns the index of the link named name in c's netns.
func indexOf(c *nsConn, name string) (int, error) {
	l, err := c.h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("look up new link %s in netns %s: %w", name, c.path, err)
	}
	return l.Attrs().Index, nil
}
