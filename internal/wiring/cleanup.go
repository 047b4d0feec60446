package wiring

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// removeGroup is the interface group RemoveLinks moves links into before
// deleting them all with one request (0 is the kernel's default group).
const removeGroup = 0x72746368 // "rtch"

// RemoveLinks removes, in the netns at netnsPath, the links named in names
// that ratchet created (their alias says so: an interface of another
// plugin or of the pod under one of those names stays), and every link left
// under a temporary name by an interrupted wiring. The
// kernel deletes them in one batch (one RCU grace period instead of one per
// link), which matters for pods with hundreds of links. A missing netns or
// link is success. It returns how many links it removed.
func RemoveLinks(ctx context.Context, netnsPath string, names []string) (int, error) {
	c, err := openNS(ctx, netnsPath)
	if errors.Is(err, ErrNetnsGone) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("remove links: %w", err)
	}
	defer c.Close()
	links, err := c.h.LinkList()
	if err != nil {
		return 0, fmt.Errorf("list links in netns %s: %w", netnsPath, err)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	var doomed []netlink.Link
	for _, l := range links {
		name, alias := l.Attrs().Name, l.Attrs().Alias
		ours := strings.HasPrefix(alias, aliasPrefix)
		if want[name] && ours || strings.HasPrefix(name, tempPrefix) {
			doomed = append(doomed, l)
		}
	}
	if len(doomed) == 0 {
		return 0, nil
	}
	if len(doomed) == 1 {
		if err := c.h.LinkDel(doomed[0]); err != nil && !isLinkNotFound(err) {
			return 0, fmt.Errorf("remove %s in netns %s: %w", doomed[0].Attrs().Name, netnsPath, err)
		}
		return 1, nil
	}
	for _, l := range doomed {
		if err := c.h.LinkSetGroup(l, removeGroup); err != nil && !isLinkNotFound(err) {
			return 0, fmt.Errorf("mark %s for removal in netns %s: %w", l.Attrs().Name, netnsPath, err)
		}
	}
	if err := deleteGroup(netnsPath, removeGroup); err != nil {
		return 0, err
	}
	return len(doomed), nil
}

// deleteGroup deletes every link of an interface group in one RTM_DELLINK
// (ifindex 0 with IFLA_GROUP), from a thread inside the netns.
func deleteGroup(netnsPath string, group uint32) error {
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
	if err != nil && !errors.Is(err, unix.ENODEV) {
		if isNotExistNS(err) {
			return nil
		}
		return fmt.Errorf("delete link group in netns %s: %w", netnsPath, err)
	}
	return nil
}
