package pairing

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/impair"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// Wirer is the kernel side of pairing: the wiring calls it makes, behind an
// interface so that the pairing state machine runs without root in tests.
type Wirer interface {
	// VethPair builds a veth between two netns, ends configured and up.
	VethPair(ctx context.Context, a, b wiring.Endpoint) error
	// Vxlan builds one vxlan end in a netns, its socket in this host's.
	Vxlan(ctx context.Context, ep wiring.Endpoint, opts wiring.VxlanOptions) error
	// Remove deletes one interface ratchet made (see wiring.RemoveOwned).
	Remove(ctx context.Context, netns, name, owner string) error
	// RemoveLinks deletes the named interfaces ratchet made, in one batch.
	RemoveLinks(ctx context.Context, netns string, names []string) (int, error)
	// Lookup reports an interface as it is.
	Lookup(ctx context.Context, netns, name string) (*wiring.LinkInfo, error)
	// Repoint points ratchet's vxlan end of link owner at another host, in
	// place (see wiring.Repoint).
	Repoint(ctx context.Context, netns, name, owner string, remote net.IP) error
	// Park moves ratchet's veth end of link owner out of its pod into this
	// host's netns (see wiring.Park); Unpark gives it to ep's pod.
	Park(ctx context.Context, netns string, ends []wiring.ParkEnd) []error
	Unpark(ctx context.Context, ep wiring.Endpoint) error
	// Stitch carries the parked veth end of link owner to another host
	// over a vxlan in this host's netns (see wiring.Stitch), re-pointing
	// it in place when only the remote changed; Unstitch undoes it;
	// CheckStitch reports how it differs from opts.
	Stitch(ctx context.Context, owner string, mtu int, opts wiring.VxlanOptions) error
	Unstitch(ctx context.Context, owner string) error
	CheckStitch(ctx context.Context, owner string, opts wiring.VxlanOptions) error
	// SetAdmin sets ratchet's interface of link owner up or down.
	SetAdmin(ctx context.Context, netns, name, owner string, up bool) error
	// Impair puts s (nil: nothing) on the interface's egress, replacing
	// what was there, and says how it is applied (see impair.Applied).
	Impair(ctx context.Context, netns, name string, s *netem.Spec) (string, error)
	// CheckImpair reports how the interface's impairment differs from s.
	CheckImpair(ctx context.Context, netns, name string, s *netem.Spec) error
}

// kernel is the Wirer of packages wiring and impair. What the kernel can
// impair with is probed once, at the first impairment.
type kernel struct {
	once sync.Once
	caps impair.Kernel
	err  error
}

// probeTimeout bounds the kernel probe.
const probeTimeout = 10 * time.Second

func (k *kernel) abilities(ctx context.Context) (impair.Kernel, error) {
	k.once.Do(func() {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
		defer cancel()
		k.caps, k.err = impair.Probe(pctx)
	})
	return k.caps, k.err
}

func (*kernel) VethPair(ctx context.Context, a, b wiring.Endpoint) error {
	return wiring.VethPair(ctx, a, b)
}

func (*kernel) Vxlan(ctx context.Context, ep wiring.Endpoint, opts wiring.VxlanOptions) error {
	return wiring.Vxlan(ctx, ep, opts)
}

func (*kernel) Remove(ctx context.Context, netns, name, owner string) error {
	return wiring.RemoveOwned(ctx, netns, name, owner)
}

func (*kernel) RemoveLinks(ctx context.Context, netns string, names []string) (int, error) {
	return wiring.RemoveLinks(ctx, netns, names)
}

func (*kernel) Lookup(ctx context.Context, netns, name string) (*wiring.LinkInfo, error) {
	return wiring.Lookup(ctx, netns, name)
}

func (*kernel) Repoint(ctx context.Context, netns, name, owner string, remote net.IP) error {
	return wiring.Repoint(ctx, netns, name, owner, remote)
}

func (*kernel) Park(ctx context.Context, netns string, ends []wiring.ParkEnd) []error {
	return wiring.ParkAll(ctx, netns, wiring.SelfNetns, ends)
}

func (*kernel) Unpark(ctx context.Context, ep wiring.Endpoint) error {
	return wiring.Unpark(ctx, ep, wiring.SelfNetns)
}

func (*kernel) Stitch(ctx context.Context, owner string, mtu int, opts wiring.VxlanOptions) error {
	return wiring.Stitch(ctx, wiring.SelfNetns, owner, mtu, opts)
}

func (*kernel) Unstitch(ctx context.Context, owner string) error {
	return wiring.Unstitch(ctx, wiring.SelfNetns, owner)
}

func (*kernel) CheckStitch(ctx context.Context, owner string, opts wiring.VxlanOptions) error {
	return wiring.CheckStitch(ctx, wiring.SelfNetns, owner, opts)
}

func (*kernel) SetAdmin(ctx context.Context, netns, name, owner string, up bool) error {
	return wiring.SetAdmin(ctx, netns, name, owner, up)
}

func (k *kernel) Impair(ctx context.Context, netns, name string, s *netem.Spec) (string, error) {
	if s == nil || s.IsZero() {
		return "", impair.Clear(ctx, netns, name)
	}
	caps, err := k.abilities(ctx)
	if err != nil {
		return "", fmt.Errorf("probe the kernel's impairments: %w", err)
	}
	a, err := impair.Apply(ctx, netns, name, *s, caps)
	return a.String(), err
}

func (k *kernel) CheckImpair(ctx context.Context, netns, name string, s *netem.Spec) error {
	if s == nil || s.IsZero() {
		a, err := impair.Inspect(ctx, netns, name)
		if err == nil && a.String() != "" {
			err = fmt.Errorf("impaired (%s), want no impairment", a)
		}
		return err
	}
	caps, err := k.abilities(ctx)
	if err != nil {
		return fmt.Errorf("probe the kernel's impairments: %w", err)
	}
	return impair.Verify(ctx, netns, name, *s, caps)
}

// hostAddress is the vxlan underlay address of this host: host.address,
// else the first global address of host.interface, else of the interface
// that holds the default route (IPv4 preferred).
func (m *Manager) hostAddress() (string, error) {
	h := m.conf.Host
	if h.Address != "" {
		return h.Address, nil
	}
	ifname := h.Interface
	if ifname == "" {
		var err error
		if ifname, err = defaultRouteInterface(); err != nil {
			return "", err
		}
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return "", fmt.Errorf("host.interface %q: %w", ifname, err)
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		addrs, err := netlink.AddrList(link, family)
		if err != nil {
			return "", fmt.Errorf("addresses of %s: %w", ifname, err)
		}
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				return a.IP.String(), nil
			}
		}
	}
	return "", fmt.Errorf("host.address: interface %s has no global address; set host.address", ifname)
}

// defaultRouteInterface names the interface of the default route.
func defaultRouteInterface() (string, error) {
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(family, &netlink.Route{Dst: nil}, netlink.RT_FILTER_DST)
		if err != nil {
			return "", fmt.Errorf("list default routes: %w", err)
		}
		for _, r := range routes {
			if r.LinkIndex == 0 || !isDefault(r.Dst) {
				continue
			}
			link, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				return "", fmt.Errorf("default route interface: %w", err)
			}
			return link.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("host.address: no default route to take the underlay address from; set host.address or host.interface")
}

func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

// HostAddress is this host's vxlan underlay address as pairing uses it
// (host.address, else of host.interface, else of the default route's).
func (m *Manager) HostAddress() (string, error) { return m.hostAddress() }
