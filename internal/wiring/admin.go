package wiring

import (
	"context"
	"fmt"
)

// SetAdmin sets the interface ifname that ratchet made for link owner up
// or down (IFF_UP) in the netns at netnsPath: a link set down loses
// carrier at both ends (a veth's peer reports no carrier; a vxlan end
// stops). It is idempotent; an interface of another owner is ErrNotOwned,
// a missing one ErrNotFound.
func SetAdmin(ctx context.Context, netnsPath, ifname, owner string, up bool) error {
	if err := ValidateName(ifname); err != nil {
		return fmt.Errorf("set %s up/down: %w", ifname, err)
	}
	c, err := openNS(ctx, netnsPath)
	if err != nil {
		return fmt.Errorf("set %s up/down: %w", ifname, err)
	}
	defer c.Close()
	l, err := ownedLink(c, ifname, owner)
	if err != nil {
		return err
	}
	if up {
		err = c.h.LinkSetUp(l)
	} else {
		err = c.h.LinkSetDown(l)
	}
	if err != nil {
		return fmt.Errorf("set %s in netns %s up=%v: %w", ifname, netnsPath, up, err)
	}
	return nil
}
