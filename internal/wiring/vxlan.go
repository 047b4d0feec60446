package wiring

import (
	"context"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

const (
	// DefaultVxlanPort is the IANA vxlan UDP port, used when Port is 0.
	DefaultVxlanPort = 4789
	// maxVNI is the largest 24-bit VXLAN network identifier.
	maxVNI = 1<<24 - 1
	// vxlanOverhead4 and vxlanOverhead6 are the bytes vxlan adds over an
	// IPv4 or IPv6 underlay: outer IP + UDP + VXLAN + inner Ethernet.
	vxlanOverhead4 = 20 + 8 + 8 + 14
	vxlanOverhead6 = 40 + 8 + 8 + 14
)

// VxlanOptions describe the underlay side of a vxlan end.
type VxlanOptions struct {
	// VNI is the vxlan network identifier, 1..16777215. It must be unique
	// per UDP port in the host netns.
	VNI int
	// Remote is the peer host's underlay (unicast) address.
	Remote net.IP
	// Local is the source address of the encapsulated packets; nil lets the
	// kernel choose by route.
	Local net.IP
	// Parent is the underlay device in the host netns; "" means the device
	// of the route to Remote.
	Parent string
	// Port is the UDP destination port; 0 means DefaultVxlanPort.
	Port int
	// HostNetns is the path of the netns that holds the underlay and the
	// vxlan's UDP socket; "" means the calling thread's netns (call Vxlan
	// inside ns.Do to use another one).
	HostNetns string
}

// Validate checks the options without touching the system. Errors match
// ErrInvalid (ErrBadAddress for Remote and Local).
func (o VxlanOptions) Validate() error {
	if o.VNI < 1 || o.VNI > maxVNI {
		return fmt.Errorf("vxlan VNI %d outside 1..%d: %w", o.VNI, maxVNI, ErrInvalid)
	}
	if o.Port < 0 || o.Port > 65535 {
		return fmt.Errorf("vxlan port %d outside 1..65535: %w", o.Port, ErrInvalid)
	}
	if o.Remote == nil || o.Remote.IsUnspecified() || o.Remote.IsMulticast() {
		return fmt.Errorf("vxlan remote %q must be a unicast address: %w", o.Remote, ErrBadAddress)
	}
	if o.Local != nil && (o.Local.To4() == nil) != (o.Remote.To4() == nil) {
		return fmt.Errorf("vxlan local %s and remote %s differ in family: %w", o.Local, o.Remote, ErrBadAddress)
	}
	if o.Parent != "" {
		if err := ValidateName(o.Parent); err != nil {
			return fmt.Errorf("vxlan parent: %w", err)
		}
	}
	return nil
}

// Vxlan makes ep a vxlan end towards opts.Remote. The device is created by
// a netlink socket in the host netns, so its UDP socket and parent stay
// there, while the device itself appears directly in ep's netns under a
// random temporary name; it is then addressed, renamed to ep.Name and
// brought up. An ep.MTU of 0 means the parent's MTU minus 50 (70 for an
// IPv6 underlay).
//
// The input is validated before anything is created. On failure nothing
// is left behind. Errors match ErrInvalid, ErrBadAddress, ErrMTU, ErrNetnsGone,
// ErrNoParent, ErrVNIInUse or ErrExists where those apply.
func Vxlan(ctx context.Context, ep Endpoint, opts VxlanOptions) (err error) {
	addrs, err := ep.parse()
	if err == nil {
		err = opts.Validate()
	}
	if err != nil {
		return fmt.Errorf("vxlan: %w", err)
	}
	host, err := openHost(ctx, opts.HostNetns)
	if err != nil {
		return fmt.Errorf("vxlan %s: %w", ep, err)
	}
	defer host.Close()
	parent, err := findParent(host, opts)
	if err != nil {
		return fmt.Errorf("vxlan %s: %w", ep, err)
	}
	mtu, err := vxlanMTU(ep.MTU, parent, opts.Remote)
	if err != nil {
		return fmt.Errorf("vxlan %s: %w", ep, err)
	}
	pod, err := openNS(ctx, ep.Netns)
	if err == nil {
		defer pod.Close()
		err = pod.checkFree(ep.Name)
	}
	if err != nil {
		return fmt.Errorf("vxlan %s: %w", ep, err)
	}
	tmp := tempName()
	idx, err := createVxlan(host, pod, tmp, parent, mtu, opts)
	if err != nil {
		return fmt.Errorf("vxlan %s: %w", ep, err)
	}
	defer func() {
		if err != nil {
			err = joinRollback(err, pod.deleteIndex(idx))
		}
	}()
	if err := configureEnd(ctx, pod, idx, tmp, ep, addrs); err != nil {
		return fmt.Errorf("vxlan: %w", err)
	}
	return nil
}

// openHost opens the host netns: the given path or the caller's own.
func openHost(ctx context.Context, path string) (*nsConn, error) {
	if path == "" {
		return openCurrentNS(ctx)
	}
	return openNS(ctx, path)
}

// findParent returns the underlay device: opts.Parent, or the device of
// the route to opts.Remote. Errors match ErrNoParent.
func findParent(host *nsConn, opts VxlanOptions) (netlink.Link, error) {
	if opts.Parent != "" {
		l, err := host.h.LinkByName(opts.Parent)
		if err != nil {
			if isLinkNotFound(err) {
				return nil, fmt.Errorf("parent %s in netns %s: %w", opts.Parent, host.path, ErrNoParent)
			}
			return nil, fmt.Errorf("look up parent %s in netns %s: %w", opts.Parent, host.path, err)
		}
		return l, nil
	}
	routes, err := host.h.RouteGet(opts.Remote)
	if err != nil || len(routes) == 0 {
		return nil, fmt.Errorf("no route to remote %s in netns %s (%v): %w", opts.Remote, host.path, err, ErrNoParent)
	}
	l, err := host.h.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return nil, fmt.Errorf("device #%d of route to %s in netns %s (%v): %w", routes[0].LinkIndex, opts.Remote, host.path, err, ErrNoParent)
	}
	if l.Attrs().Flags&net.FlagLoopback != 0 {
		return nil, fmt.Errorf("remote %s is local to netns %s: %w", opts.Remote, host.path, ErrNoParent)
	}
	return l, nil
}

// vxlanMTU returns mtu, or the parent's MTU minus the encapsulation
// overhead when mtu is 0; a larger mtu than that is rejected with ErrMTU
// (before anything is created).
func vxlanMTU(mtu int, parent netlink.Link, remote net.IP) (int, error) {
	overhead := vxlanOverhead4
	if remote.To4() == nil {
		overhead = vxlanOverhead6
	}
	limit := parent.Attrs().MTU - overhead
	switch {
	case mtu == 0 && limit < minMTU:
		return 0, fmt.Errorf("parent %s MTU %d too small for vxlan: %w", parent.Attrs().Name, parent.Attrs().MTU, ErrInvalid)
	case mtu == 0:
		return limit, nil
	case mtu > limit:
		return 0, fmt.Errorf("mtu %d above the maximum %d (parent %s MTU %d minus %d of vxlan overhead): %w",
			mtu, limit, parent.Attrs().Name, parent.Attrs().MTU, overhead, ErrMTU)
	}
	return mtu, nil
}

// createVxlan creates the device through the host's socket, with
// IFLA_NET_NS_FD placing it in the pod netns under name tmp, and returns
// its index there.
func createVxlan(host, pod *nsConn, tmp string, parent netlink.Link, mtu int, opts VxlanOptions) (int, error) {
	port := opts.Port
	if port == 0 {
		port = DefaultVxlanPort
	}
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: tmp, MTU: mtu, Namespace: pod.fd()},
		VxlanId:      opts.VNI,
		VtepDevIndex: parent.Attrs().Index,
		Group:        opts.Remote,
		SrcAddr:      opts.Local,
		Port:         port,
		Learning:     true,
	}
	if err := host.h.LinkAdd(vx); err != nil {
		if isExist(err) {
			return 0, fmt.Errorf("VNI %d port %d in netns %s: %w", opts.VNI, port, host.path, ErrVNIInUse)
		}
		return 0, fmt.Errorf("create vxlan %s (VNI %d, parent %s in netns %s) in netns %s: %w",
			tmp, opts.VNI, parent.Attrs().Name, host.path, pod.path, err)
	}
	idx, err := indexOf(pod, tmp)
	if err != nil {
		return 0, joinRollback(err, pod.deleteName(tmp))
	}
	return idx, nil
}
