package wiring

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// defaultOpTimeout bounds each netlink request when ctx has no deadline.
	defaultOpTimeout = 30 * time.Second
	// cleanupTimeout bounds each netlink request of a rollback, which runs
	// even when ctx is already done.
	cleanupTimeout = 5 * time.Second
	// tempPrefix starts the temporary names links carry until configured.
	tempPrefix = "rtw"
)

// nsConn is an open network namespace with a netlink handle bound to it.
// The handle's socket lives in the netns, so requests through it act there
// whatever thread the goroutine runs on.
type nsConn struct {
	path string
	ns   ns.NetNS // nil for the caller's own netns
	h    *netlink.Handle
}

// openNS opens the netns at path and a netlink handle in it. A missing path
// gives an error matching ErrNetnsGone.
func openNS(ctx context.Context, path string) (*nsConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	n, err := ns.GetNS(path)
	if err != nil {
		if isNotExistNS(err) {
			return nil, fmt.Errorf("open netns %s: %w", path, ErrNetnsGone)
		}
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(vnetns.NsHandle(n.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		_ = n.Close()
		return nil, fmt.Errorf("netlink handle in netns %s: %w", path, err)
	}
	c := &nsConn{path: path, ns: n, h: h}
	if err := c.setDeadline(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// openCurrentNS opens a netlink handle in the calling thread's netns; call
// it from inside ns.Do to act in another netns.
func openCurrentNS(ctx context.Context) (*nsConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open caller's netns: %w", err)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in caller's netns: %w", err)
	}
	c := &nsConn{path: "(caller's netns)", h: h}
	if err := c.setDeadline(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// setDeadline bounds every request on the handle by ctx's deadline, or by
// defaultOpTimeout when ctx has none.
func (c *nsConn) setDeadline(ctx context.Context) error {
	to := defaultOpTimeout
	if d, ok := ctx.Deadline(); ok {
		to = time.Until(d)
		if to <= 0 {
			return fmt.Errorf("netns %s: %w", c.path, context.DeadlineExceeded)
		}
	}
	if err := c.h.SetSocketTimeout(to); err != nil {
		return fmt.Errorf("netlink timeout in netns %s: %w", c.path, err)
	}
	return nil
}

// Close releases the handle and the netns file.
func (c *nsConn) Close() {
	c.h.Close()
	if c.ns != nil {
		_ = c.ns.Close()
	}
}

// fd returns the netns file descriptor for IFLA_NET_NS_FD.
func (c *nsConn) fd() netlink.NsFd {
	return netlink.NsFd(c.ns.Fd())
}

// checkFree returns an error matching ErrExists when name is taken.
func (c *nsConn) checkFree(name string) error {
	_, err := c.h.LinkByName(name)
	switch {
	case err == nil:
		return fmt.Errorf("interface %s in netns %s: %w", name, c.path, ErrExists)
	case isLinkNotFound(err):
		return nil
	default:
		return fmt.Errorf("look up %s in netns %s: %w", name, c.path, err)
	}
}

// enableIPv6 clears disable_ipv6 on the interface when it is set. sysctls
// under /proc/sys/net belong to the netns of the thread that opens them,
// hence ns.Do.
func (c *nsConn) enableIPv6(ifname string) error {
	return c.setSysctl("ipv6", ifname, "disable_ipv6", "0")
}

// setSysctl sets net.<family>.conf.<ifname>.<key> to val in c's netns,
// writing only when it differs.
func (c *nsConn) setSysctl(family, ifname, key, val string) error {
	file := filepath.Join("/proc/sys/net", family, "conf", ifname, key)
	err := c.ns.Do(func(ns.NetNS) error {
		cur, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) == val {
			return nil
		}
		return os.WriteFile(file, []byte(val), 0o644)
	})
	if err != nil {
		return fmt.Errorf("set %s to %s on %s in netns %s: %w", key, val, ifname, c.path, err)
	}
	return nil
}

// deleteIndex removes the link with the given index, for rollbacks. A link
// already gone is success.
func (c *nsConn) deleteIndex(index int) error {
	_ = c.h.SetSocketTimeout(cleanupTimeout)
	err := c.h.LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}})
	if err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("delete link #%d in netns %s: %w", index, c.path, err)
	}
	return nil
}

// deleteName removes the link named name, for rollbacks when its index is
// unknown. A link already gone is success.
func (c *nsConn) deleteName(name string) error {
	_ = c.h.SetSocketTimeout(cleanupTimeout)
	l, err := c.h.LinkByName(name)
	if err == nil {
		err = c.h.LinkDel(l)
	}
	if err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("delete link %s in netns %s: %w", name, c.path, err)
	}
	return nil
}

// tempName returns a random interface name that no other process or
// goroutine will pick.
func tempName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return tempPrefix + hex.EncodeToString(b)
}

// joinRollback adds a failed rollback to the error that caused it.
func joinRollback(err, rbErr error) error {
	if rbErr == nil {
		return err
	}
	return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
}
