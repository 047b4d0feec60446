package impair

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Sentinel errors; returned errors wrap them with context.
var (
	// ErrNetnsGone means the network namespace path does not exist.
	ErrNetnsGone = errors.New("network namespace does not exist")
	// ErrLinkNotFound means the interface does not exist in the netns.
	ErrLinkNotFound = errors.New("link not found")
)

// defaultTimeout bounds each netlink request when ctx has no deadline.
const defaultTimeout = 30 * time.Second

// conn is an open network namespace with netlink sockets bound to it: a
// netlink.Handle for the common requests and a raw socket for requests
// netlink's types cannot express (tbf with TCA_TBF_BURST). Sockets made in
// a netns act there whatever thread uses them.
type conn struct {
	path string
	ns   ns.NetNS
	h    *netlink.Handle
	raw  map[int]*nl.SocketHandle
}

// open opens the netns at path. A missing path gives an error matching
// ErrNetnsGone.
func open(ctx context.Context, path string) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	n, err := ns.GetNS(path)
	if err != nil {
		var gone ns.NSPathNotExistErr
		if errors.As(err, &gone) {
			return nil, fmt.Errorf("open netns %s: %w", path, ErrNetnsGone)
		}
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	c := &conn{path: path, ns: n}
	if c.h, err = netlink.NewHandleAt(vnetns.NsHandle(n.Fd()), unix.NETLINK_ROUTE); err != nil {
		_ = n.Close()
		return nil, fmt.Errorf("netlink handle in netns %s: %w", path, err)
	}
	s, err := nl.GetNetlinkSocketAt(vnetns.NsHandle(n.Fd()), vnetns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("netlink socket in netns %s: %w", path, err)
	}
	c.raw = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	if err := c.setDeadline(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// setDeadline bounds every request by ctx's deadline, or by defaultTimeout
// when ctx has none.
func (c *conn) setDeadline(ctx context.Context) error {
	to := defaultTimeout
	if d, ok := ctx.Deadline(); ok {
		to = time.Until(d)
		if to <= 0 {
			return fmt.Errorf("netns %s: %w", c.path, context.DeadlineExceeded)
		}
	}
	if err := c.h.SetSocketTimeout(to); err != nil {
		return fmt.Errorf("netlink timeout in netns %s: %w", c.path, err)
	}
	tv := unix.NsecToTimeval(to.Nanoseconds())
	for _, sh := range c.raw {
		if err := sh.Socket.SetSendTimeout(&tv); err != nil {
			return fmt.Errorf("netlink timeout in netns %s: %w", c.path, err)
		}
		if err := sh.Socket.SetReceiveTimeout(&tv); err != nil {
			return fmt.Errorf("netlink timeout in netns %s: %w", c.path, err)
		}
	}
	return nil
}

// execute sends a raw request on the netns's socket and waits for the ack.
func (c *conn) execute(req *nl.NetlinkRequest) error {
	req.Sockets = c.raw
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// link looks the interface up; a missing one gives an error matching
// ErrLinkNotFound.
func (c *conn) link(ifname string) (netlink.Link, error) {
	l, err := c.h.LinkByName(ifname)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("interface %s in netns %s: %w", ifname, c.path, ErrLinkNotFound)
		}
		return nil, fmt.Errorf("look up %s in netns %s: %w", ifname, c.path, err)
	}
	return l, nil
}

// Close releases the sockets and the netns file.
func (c *conn) Close() {
	if c.h != nil {
		c.h.Close()
	}
	for _, sh := range c.raw {
		sh.Close()
	}
	if c.ns != nil {
		_ = c.ns.Close()
	}
}
