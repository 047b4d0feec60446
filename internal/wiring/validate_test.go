package wiring

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"eth0", true},
		{"net1-a_b.c", true},
		{strings.Repeat("x", 15), true},
		{"", false},
		{strings.Repeat("x", 16), false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"eth0:1", false},
		{"eth 0", false},
		{"eth\t0", false},
		{"eth0\n", false},
	} {
		err := ValidateName(tc.name)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestEndpointValidate(t *testing.T) {
	ok := Endpoint{Netns: "/run/netns/x", Name: "eth1"}
	with := func(f func(*Endpoint)) Endpoint { e := ok; f(&e); return e }
	for _, tc := range []struct {
		name string
		ep   Endpoint
		want error // nil means valid
	}{
		{"minimal", ok, nil},
		{"dual stack", with(func(e *Endpoint) { e.Addresses = []string{"192.0.2.1/24", "2001:db8::1/64"} }), nil},
		{"host route", with(func(e *Endpoint) { e.Addresses = []string{"203.0.113.5/32"} }), nil},
		{"mtu 9000", with(func(e *Endpoint) { e.MTU = 9000 }), nil},
		{"mtu 576 IPv4 only", with(func(e *Endpoint) { e.MTU = 576; e.Addresses = []string{"10.0.0.1/8"} }), nil},
		{"no netns", with(func(e *Endpoint) { e.Netns = "" }), ErrInvalid},
		{"bad name", with(func(e *Endpoint) { e.Name = "a:b" }), ErrInvalid},
		{"long name", with(func(e *Endpoint) { e.Name = "abcdefghijklmnop" }), ErrInvalid},
		{"mtu too small", with(func(e *Endpoint) { e.MTU = 67 }), ErrInvalid},
		{"mtu too big", with(func(e *Endpoint) { e.MTU = 65536 }), ErrInvalid},
		{"negative mtu", with(func(e *Endpoint) { e.MTU = -1 }), ErrInvalid},
		{"IPv6 with mtu below 1280", with(func(e *Endpoint) { e.MTU = 1000; e.Addresses = []string{"2001:db8::1/64"} }), ErrInvalid},
		{"no prefix", with(func(e *Endpoint) { e.Addresses = []string{"192.0.2.1"} }), ErrBadAddress},
		{"garbage", with(func(e *Endpoint) { e.Addresses = []string{"not-an-ip/24"} }), ErrBadAddress},
		{"prefix too long", with(func(e *Endpoint) { e.Addresses = []string{"192.0.2.1/33"} }), ErrBadAddress},
		{"IPv6 prefix too long", with(func(e *Endpoint) { e.Addresses = []string{"2001:db8::1/129"} }), ErrBadAddress},
		{"unspecified", with(func(e *Endpoint) { e.Addresses = []string{"0.0.0.0/0"} }), ErrBadAddress},
		{"multicast", with(func(e *Endpoint) { e.Addresses = []string{"ff02::1/64"} }), ErrBadAddress},
		{"loopback", with(func(e *Endpoint) { e.Addresses = []string{"127.0.0.2/8"} }), ErrBadAddress},
		{"IPv4-mapped", with(func(e *Endpoint) { e.Addresses = []string{"::ffff:192.0.2.1/120"} }), ErrBadAddress},
		{"duplicate", with(func(e *Endpoint) { e.Addresses = []string{"192.0.2.1/24", "192.0.2.1/25"} }), ErrBadAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ep.Validate()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVxlanOptionsValidate(t *testing.T) {
	remote := net.ParseIP("198.51.100.2")
	for _, tc := range []struct {
		name string
		opts VxlanOptions
		want error
	}{
		{"minimal", VxlanOptions{VNI: 1, Remote: remote}, nil},
		{"all set", VxlanOptions{VNI: 1<<24 - 1, Remote: remote, Local: net.ParseIP("198.51.100.1"), Parent: "eth0", Port: 8472}, nil},
		{"IPv6 underlay", VxlanOptions{VNI: 10, Remote: net.ParseIP("2001:db8::2")}, nil},
		{"VNI 0", VxlanOptions{VNI: 0, Remote: remote}, ErrInvalid},
		{"VNI too big", VxlanOptions{VNI: 1 << 24, Remote: remote}, ErrInvalid},
		{"negative port", VxlanOptions{VNI: 1, Remote: remote, Port: -1}, ErrInvalid},
		{"port too big", VxlanOptions{VNI: 1, Remote: remote, Port: 65536}, ErrInvalid},
		{"no remote", VxlanOptions{VNI: 1}, ErrBadAddress},
		{"unspecified remote", VxlanOptions{VNI: 1, Remote: net.IPv4zero}, ErrBadAddress},
		{"multicast remote", VxlanOptions{VNI: 1, Remote: net.ParseIP("239.1.1.1")}, ErrBadAddress},
		{"local of other family", VxlanOptions{VNI: 1, Remote: remote, Local: net.ParseIP("2001:db8::1")}, ErrBadAddress},
		{"bad parent", VxlanOptions{VNI: 1, Remote: remote, Parent: "a b"}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestInvalidInputFailsBeforeTouchingNetns uses netns paths that do not
// exist: the validation error must come first, not ErrNetnsGone.
func TestInvalidInputFailsBeforeTouchingNetns(t *testing.T) {
	ctx := context.Background()
	good := Endpoint{Netns: "/nonexistent/a", Name: "eth1"}
	bad := Endpoint{Netns: "/nonexistent/b", Name: "eth1", Addresses: []string{"192.0.2.300/24"}}
	if err := VethPair(ctx, good, bad); !errors.Is(err, ErrBadAddress) {
		t.Errorf("VethPair: %v, want ErrBadAddress", err)
	}
	if err := VethPair(ctx, good, good); !errors.Is(err, ErrInvalid) {
		t.Errorf("VethPair with both ends the same: %v, want ErrInvalid", err)
	}
	if err := Vxlan(ctx, good, VxlanOptions{VNI: 1}); !errors.Is(err, ErrBadAddress) {
		t.Errorf("Vxlan: %v, want ErrBadAddress", err)
	}
	if err := Remove(ctx, "/nonexistent/a", "a/b"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Remove: %v, want ErrInvalid", err)
	}
	if _, err := Lookup(ctx, "/nonexistent/a", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Lookup: %v, want ErrInvalid", err)
	}
}

func TestLinkInfoMatches(t *testing.T) {
	ep := Endpoint{Netns: "/run/netns/x", Name: "eth1", MTU: 1400, Addresses: []string{"192.0.2.1/24", "2001:db8:0::1/64"}}
	good := LinkInfo{Name: "eth1", Kind: "veth", MTU: 1400, AdminUp: true,
		Addresses: []string{"192.0.2.1/24", "2001:db8::1/64", "198.51.100.1/24"}}
	with := func(f func(*LinkInfo)) LinkInfo { li := good; f(&li); return li }
	for _, tc := range []struct {
		name string
		li   LinkInfo
		ok   bool
	}{
		{"same, extra address allowed", good, true},
		{"renamed", with(func(li *LinkInfo) { li.Name = "eth2" }), false},
		{"other MTU", with(func(li *LinkInfo) { li.MTU = 1500 }), false},
		{"address missing", with(func(li *LinkInfo) { li.Addresses = []string{"192.0.2.1/24"} }), false},
		{"down", with(func(li *LinkInfo) { li.AdminUp = false }), false},
	} {
		if err := tc.li.Matches(ep); (err == nil) != tc.ok {
			t.Errorf("%s: Matches = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
