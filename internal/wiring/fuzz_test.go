package wiring

import (
	"net"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/ifname"
)

// FuzzParseAddresses checks that any accepted address is a CIDR that
// parses back to the same address, and that nothing panics.
func FuzzParseAddresses(f *testing.F) {
	for _, s := range []string{"192.0.2.1/24", "2001:db8::1/64", "::ffff:192.0.2.1/120", "1.2.3.4", "", "/", "::/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addrs, err := parseAddresses([]string{s})
		if err != nil {
			return
		}
		ip, _, err := net.ParseCIDR(addrs[0].IPNet.String())
		if err != nil || !ip.Equal(addrs[0].IP) {
			t.Fatalf("%q accepted as %s, which does not parse back: %v", s, addrs[0].IPNet, err)
		}
	})
}

// FuzzValidateName checks that accepted names fit IFNAMSIZ and hold no
// separator.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"eth0", "a:b", "a/b", "x y", "", "0123456789abcdef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName(s) == nil && (len(s) == 0 || len(s) > ifname.MaxLen || strings.ContainsAny(s, "/:% ")) {
			t.Fatalf("accepted %q", s)
		}
	})
}
