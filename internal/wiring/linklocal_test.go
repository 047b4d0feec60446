package wiring

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// An IPv6 link-local address ratchet configured is reported by Lookup, so
// a CHECK comparing it with the record passes.
func TestLookupReportsConfiguredLinkLocalAddresses(t *testing.T) {
	a, b := testenv.NewNS(t), testenv.NewNS(t)
	ea := Endpoint{Netns: a.Path(), Name: "ll0", Addresses: []string{"fe80::1/64", "192.0.2.1/24"}}
	eb := Endpoint{Netns: b.Path(), Name: "ll0", Addresses: []string{"fe80::2/64"}}
	if err := VethPair(testCtx(t), ea, eb); err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		ns   *testenv.NS
		ep   Endpoint
		want string
	}{{a, ea, "fe80::1/64"}, {b, eb, "fe80::2/64"}} {
		info := mustLookup(t, side.ns, "ll0")
		if !info.HasAddress(side.want) {
			t.Errorf("%s: Lookup addresses %v lack %s", side.ep, info.Addresses, side.want)
		}
		if err := info.Matches(side.ep); err != nil {
			t.Errorf("Matches: %v", err)
		}
	}
}

func TestHasAddressComparesAddressesNotText(t *testing.T) {
	li := &LinkInfo{Addresses: []string{"2001:db8::1/64", "192.0.2.1/24", "fe80::1/64"}}
	for cidr, want := range map[string]bool{
		"2001:db8::1/64": true, "2001:DB8:0::1/64": true, "2001:db8::1/128": false,
		"192.0.2.1/24": true, "::ffff:192.0.2.1/120": true, "192.0.2.1/25": false,
		"FE80::1/64": true, "fe80::2/64": false, "junk": false, "": false,
	} {
		if got := li.HasAddress(cidr); got != want {
			t.Errorf("HasAddress(%q) = %v, want %v", cidr, got, want)
		}
	}
}
