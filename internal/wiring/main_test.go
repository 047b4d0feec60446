package wiring

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// testCtx bounds one test's wiring calls.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// tempLinks returns the links named like our temporary names.
func tempLinks(names []string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, tempPrefix) {
			out = append(out, n)
		}
	}
	return out
}

// requireNoTempLinks fails when a temporary link is left in the host netns
// or in any of nss.
func requireNoTempLinks(t testing.TB, nss ...*testenv.NS) {
	t.Helper()
	if left := tempLinks(testenv.HostLinks(t)); len(left) > 0 {
		t.Errorf("temporary links left in host netns: %v", left)
	}
	for _, n := range nss {
		if left := tempLinks(n.Links(t)); len(left) > 0 {
			t.Errorf("temporary links left in netns %s: %v", n.Name, left)
		}
	}
}

// requireLinks fails unless the netns holds exactly the named links.
func requireLinks(t testing.TB, n *testenv.NS, want ...string) {
	t.Helper()
	got := n.Links(t)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("links in netns %s = %v, want %v", n.Name, got, want)
	}
}

// mustLookup looks a link up and fails the test when it is missing.
func mustLookup(t testing.TB, n *testenv.NS, ifname string) *LinkInfo {
	t.Helper()
	info, err := Lookup(testCtx(t), n.Path(), ifname)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return info
}

// requirePing fails unless from reaches each address.
func requirePing(t testing.TB, from *testenv.NS, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if err := from.Ping(a); err != nil {
			t.Errorf("ping %s from %s: %v", a, from.Name, err)
		}
	}
}

// requireInfo checks what Lookup reports against the endpoint wired.
func requireInfo(t testing.TB, info *LinkInfo, kind string, mtu int, ep Endpoint) {
	t.Helper()
	if info.Kind != kind || info.MTU != mtu || !info.AdminUp || !info.OperUp {
		t.Errorf("%s: kind %q MTU %d up %v carrier %v, want %q %d up with carrier",
			ep, info.Kind, info.MTU, info.AdminUp, info.OperUp, kind, mtu)
	}
	parsed, err := parseAddresses(ep.Addresses)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, a := range parsed {
		want = append(want, a.IPNet.String())
	}
	got := slices.DeleteFunc(slices.Clone(info.Addresses), func(s string) bool {
		return strings.HasPrefix(s, "fe80:") && !slices.Contains(want, s) // the kernel's own
	})
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: addresses %v, want %v", ep, got, want)
	}
	if err := info.Matches(ep); err != nil {
		t.Error(err)
	}
}
