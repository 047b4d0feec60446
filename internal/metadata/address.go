package metadata

import (
	"net/netip"
	"strconv"
	"strings"
)

// MinIPv6MTU is the smallest MTU of a link with an IPv6 address: the
// kernel disables IPv6 on an interface whose MTU is below it.
const MinIPv6MTU = 1280

// normaliseIP turns an address or CIDR into a CIDR that keeps the host
// address; a bare address gets the default prefix length of its family.
// The address must be one the kernel configures and a link can use: see
// CheckLinkAddress.
func normaliseIP(key, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	var prefix netip.Prefix
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return "", invalid(key, s, "not an IP address or CIDR")
		}
		prefix = p
	} else {
		addr, err := netip.ParseAddr(s)
		if err != nil || addr.Zone() != "" {
			return "", invalid(key, s, "not an IP address or CIDR")
		}
		bits := DefaultIPv4PrefixLen
		if !addr.Is4() {
			bits = DefaultIPv6PrefixLen
		}
		prefix = netip.PrefixFrom(addr, bits)
	}
	if reason := CheckLinkAddress(prefix); reason != "" {
		return "", invalid(key, s, reason)
	}
	return prefix.String(), nil
}

// CheckLinkAddress returns why p cannot be the address of a link end, or
// "". A link end's address is a unicast host address in a prefix of at
// least one bit: not unspecified, multicast, loopback, IPv4-mapped IPv6
// (the kernel takes it as IPv4) or the limited broadcast address, and in
// an IPv4 prefix of /30 or wider, neither the network nor the broadcast
// address of the prefix (/31 and /32 have neither, RFC 3021). IPv6
// link-local addresses (fe80::/10) are allowed.
func CheckLinkAddress(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case !p.IsValid():
		return "not an IP address or CIDR"
	case a.Is4In6():
		return "an IPv4-mapped IPv6 address (write the IPv4 address)"
	case a.IsUnspecified() || a.IsMulticast():
		return "not a unicast address"
	case a.IsLoopback():
		return "a loopback address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the limited broadcast address"
	case p.Bits() == 0:
		return "a /0 prefix (every address on the link)"
	}
	if a.Is4() && p.Bits() <= 30 {
		network := p.Masked().Addr()
		if a == network {
			return "the network address of " + p.Masked().String()
		}
		if a == lastAddr(p) {
			return "the broadcast address of " + p.Masked().String()
		}
	}
	return ""
}

// lastAddr is the highest address of the IPv4 prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// checkEnds returns the *Error of a link whose two ends clash: the same
// address, addresses of different families, or an MTU too small for the
// IPv6 address of either end. ip and peerIP are normalised CIDRs or "".
func checkEnds(l Link, k linkKeys) error {
	var a, z netip.Prefix
	if l.IP != "" && l.PeerIP != "" {
		a, z = netip.MustParsePrefix(l.IP), netip.MustParsePrefix(l.PeerIP)
		switch {
		case a.Addr() == z.Addr():
			return invalid(k.peerIP, l.PeerIP, "the same address as "+k.ip)
		case a.Addr().Is4() != z.Addr().Is4():
			return invalid(k.peerIP, l.PeerIP, "not the IP family of "+k.ip)
		}
	}
	if l.MTU != 0 && l.MTU < MinIPv6MTU && (isIPv6(l.IP) || isIPv6(l.PeerIP)) {
		return invalid(k.mtu, strconv.Itoa(l.MTU),
			"below "+strconv.Itoa(MinIPv6MTU)+", the smallest MTU of a link with an IPv6 address")
	}
	return nil
}

// isIPv6 reports whether the normalised CIDR s is an IPv6 address.
func isIPv6(s string) bool {
	return s != "" && !netip.MustParsePrefix(s).Addr().Is4()
}
