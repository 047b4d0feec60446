package wiring

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// RemoveAllOwned removes every interface ratchet made in the netns at
// netnsPath (its alias says so), and those left under temporary names, in
// one batch: a pod's link ends when nothing records their names (the
// plugin's DEL without the agent). A missing netns is success.
func RemoveAllOwned(ctx context.Context, netnsPath string) (int, error) {
	c, err := openNS(ctx, netnsPath)
	if errors.Is(err, ErrNetnsGone) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("remove ratchet's links: %w", err)
	}
	links, err := c.h.LinkList()
	c.Close()
	if err != nil {
		return 0, fmt.Errorf("list links in netns %s: %w", netnsPath, err)
	}
	var names []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, aliasPrefix) {
			names = append(names, l.Attrs().Name)
		}
	}
	return RemoveLinks(ctx, netnsPath, names)
}
