package wiring

import (
	"fmt"
	"net"

	"github.com/ratchet-cni/ratchet/internal/ifname"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// DefaultVethMTU is the MTU of a veth end whose Endpoint.MTU is 0.
	DefaultVethMTU = 1500
	minMTU         = 68
	maxMTU         = 65535
	// minIPv6MTU is the smallest MTU on which the kernel keeps IPv6 enabled.
	minIPv6MTU = 1280
)

// Endpoint is one end of a wire: an interface inside a network namespace.
type Endpoint struct {
	// Netns is the path of the network namespace, e.g. /var/run/netns/pod1
	// or /proc/1234/ns/net.
	Netns string
	// Name is the interface name inside Netns (at most 15 bytes, no '/',
	// ':' or white space).
	Name string
	// Addresses are the interface addresses in CIDR notation, IPv4 or IPv6
	// (e.g. "192.0.2.1/24", "2001:db8::1/64"). IPv6 addresses are usable at
	// once: no duplicate address detection is run.
	Addresses []string
	// MTU of the interface; 0 means the kind's default (1500 for veth, the
	// parent's MTU minus the encapsulation overhead for vxlan).
	MTU int
	// Owner names what the interface belongs to (ratchet's link ID). It is
	// recorded in the interface's alias as OwnerAlias(Owner), which is how
	// ratchet later proves an interface is its own before removing it.
	Owner string
}

// aliasPrefix starts the alias of every interface ratchet creates.
const aliasPrefix = "ratchet:"

// maxAlias is IFALIASZ minus the terminating NUL.
const maxAlias = 255

// OwnerAlias is the interface alias that marks an interface of owner.
func OwnerAlias(owner string) string {
	a := aliasPrefix + owner
	if len(a) > maxAlias {
		a = a[:maxAlias]
	}
	return a
}

// String names the endpoint for error messages.
func (e Endpoint) String() string {
	return fmt.Sprintf("%s in netns %s", e.Name, e.Netns)
}

// Validate checks the endpoint without touching the system. Errors match
// ErrInvalid, and ErrBadAddress for addresses.
func (e Endpoint) Validate() error {
	_, err := e.parse()
	return err
}

// parse validates the endpoint and returns its addresses ready for netlink.
func (e Endpoint) parse() ([]*netlink.Addr, error) {
	if e.Netns == "" {
		return nil, fmt.Errorf("interface %q: empty netns path: %w", e.Name, ErrInvalid)
	}
	if err := ValidateName(e.Name); err != nil {
		return nil, fmt.Errorf("netns %s: %w", e.Netns, err)
	}
	if e.MTU != 0 && (e.MTU < minMTU || e.MTU > maxMTU) {
		return nil, fmt.Errorf("%s: MTU %d outside %d..%d: %w", e, e.MTU, minMTU, maxMTU, ErrInvalid)
	}
	addrs, err := parseAddresses(e.Addresses)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e, err)
	}
	if e.MTU != 0 && e.MTU < minIPv6MTU && hasIPv6(addrs) {
		return nil, fmt.Errorf("%s: MTU %d below %d leaves IPv6 disabled: %w", e, e.MTU, minIPv6MTU, ErrInvalid)
	}
	return addrs, nil
}

// ValidateName checks an interface name with ifname.Check: the kernel's
// rule, plus '%' (which the kernel expands) and control characters. Errors
// match ErrInvalid.
func ValidateName(name string) error {
	if reason := ifname.Reason(name); reason != "" {
		return fmt.Errorf("interface name %q %s: %w", name, reason, ErrInvalid)
	}
	return nil
}

// parseAddresses turns CIDR strings into netlink addresses. IPv6 addresses
// get IFA_F_NODAD so they are usable at once.
func parseAddresses(cidrs []string) ([]*netlink.Addr, error) {
	addrs := make([]*netlink.Addr, 0, len(cidrs))
	seen := make(map[string]bool, len(cidrs))
	for _, s := range cidrs {
		ip, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w: %w", s, ErrBadAddress, err)
		}
		if ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() {
			return nil, fmt.Errorf("address %q is unspecified, multicast or loopback: %w", s, ErrBadAddress)
		}
		if v4 := ip.To4(); v4 != nil {
			if len(ipnet.Mask) != net.IPv4len {
				return nil, fmt.Errorf("address %q is IPv4-mapped IPv6: %w", s, ErrBadAddress)
			}
			ip = v4
		}
		key := ip.String()
		if seen[key] {
			return nil, fmt.Errorf("address %q given twice: %w", s, ErrBadAddress)
		}
		seen[key] = true
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: ipnet.Mask}}
		if ip.To4() == nil {
			a.Flags = unix.IFA_F_NODAD
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

func hasIPv6(addrs []*netlink.Addr) bool {
	for _, a := range addrs {
		if a.IP.To4() == nil {
			return true
		}
	}
	return false
}

func hasIPv4(addrs []*netlink.Addr) bool {
	for _, a := range addrs {
		if a.IP.To4() != nil {
			return true
		}
	}
	return false
}
