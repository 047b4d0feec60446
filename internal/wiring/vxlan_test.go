package wiring

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// underlay is two "hosts" joined by a veth (ul0 198.51.100.1/24 in hostA,
// ul1 198.51.100.2/24 in hostB, MTU 1500), with a pod netns behind each.
type underlay struct {
	hostA, hostB, podA, podB *testenv.NS
}

func newUnderlay(t testing.TB) *underlay {
	t.Helper()
	u := &underlay{hostA: testenv.NewNS(t), hostB: testenv.NewNS(t), podA: testenv.NewNS(t), podB: testenv.NewNS(t)}
	u.hostA.MustExec(t, "ip", "link", "add", "ul0", "mtu", "1500", "type", "veth",
		"peer", "name", "ul1", "mtu", "1500", "netns", u.hostB.Name)
	u.hostA.MustExec(t, "ip", "addr", "add", "198.51.100.1/24", "dev", "ul0")
	u.hostB.MustExec(t, "ip", "addr", "add", "198.51.100.2/24", "dev", "ul1")
	u.hostA.MustExec(t, "ip", "link", "set", "ul0", "up")
	u.hostB.MustExec(t, "ip", "link", "set", "ul1", "up")
	return u
}

func TestVxlanPodsPingAcrossHosts(t *testing.T) {
	u := newUnderlay(t)
	a := Endpoint{Netns: u.podA.Path(), Name: "vx0", Addresses: []string{"10.10.0.1/24", "2001:db8:10::1/64"}}
	b := Endpoint{Netns: u.podB.Path(), Name: "vx0", Addresses: []string{"10.10.0.2/24", "2001:db8:10::2/64"}}
	ctx := testCtx(t)
	// Side A: called from inside the host netns, as a plugin running there.
	err := u.hostA.Do(func(ns.NetNS) error {
		return Vxlan(ctx, a, VxlanOptions{VNI: 4242, Remote: net.ParseIP("198.51.100.2")})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Side B: the host netns given by path.
	err = Vxlan(ctx, b, VxlanOptions{VNI: 4242, Remote: net.ParseIP("198.51.100.1"), HostNetns: u.hostB.Path()})
	if err != nil {
		t.Fatal(err)
	}

	requirePing(t, u.podA, "10.10.0.2", "2001:db8:10::2")
	requirePing(t, u.podB, "10.10.0.1", "2001:db8:10::1")
	for _, side := range []struct {
		pod    *testenv.NS
		ep     Endpoint
		remote string
	}{{u.podA, a, "198.51.100.2"}, {u.podB, b, "198.51.100.1"}} {
		info := mustLookup(t, side.pod, "vx0")
		requireInfo(t, info, "vxlan", 1450, side.ep)
		if info.VNI != 4242 || info.Port != DefaultVxlanPort || info.Remote.String() != side.remote {
			t.Errorf("vxlan in %s: VNI %d port %d remote %s", side.pod.Name, info.VNI, info.Port, info.Remote)
		}
	}
	// The devices sit in the pods; their UDP sockets stay in the hosts.
	requireLinks(t, u.hostA, "ul0")
	requireLinks(t, u.hostB, "ul1")
	if out := u.hostA.MustExec(t, "ss", "-Hlun"); !strings.Contains(out, ":4789") {
		t.Errorf("no vxlan UDP socket in host netns: %q", out)
	}
	requireNoTempLinks(t, u.hostA, u.hostB, u.podA, u.podB)
}

func TestVxlanExplicitParentPortAndMTU(t *testing.T) {
	u := newUnderlay(t)
	ctx := testCtx(t)
	a := Endpoint{Netns: u.podA.Path(), Name: "net1", MTU: 1400, Addresses: []string{"10.11.0.1/24"}}
	b := Endpoint{Netns: u.podB.Path(), Name: "net1", MTU: 1400, Addresses: []string{"10.11.0.2/24"}}
	optsA := VxlanOptions{VNI: 7, Remote: net.ParseIP("198.51.100.2"), Local: net.ParseIP("198.51.100.1"),
		Parent: "ul0", Port: 8472, HostNetns: u.hostA.Path()}
	optsB := VxlanOptions{VNI: 7, Remote: net.ParseIP("198.51.100.1"), Parent: "ul1", Port: 8472, HostNetns: u.hostB.Path()}
	if err := Vxlan(ctx, a, optsA); err != nil {
		t.Fatal(err)
	}
	if err := Vxlan(ctx, b, optsB); err != nil {
		t.Fatal(err)
	}
	requirePing(t, u.podA, "10.11.0.2")
	info := mustLookup(t, u.podA, "net1")
	requireInfo(t, info, "vxlan", 1400, a)
	if info.Port != 8472 || info.VNI != 7 {
		t.Errorf("port %d VNI %d, want 8472 7", info.Port, info.VNI)
	}
}

func TestVxlanFailuresLeaveNothing(t *testing.T) {
	u := newUnderlay(t)
	ep := Endpoint{Netns: u.podA.Path(), Name: "vx0", Addresses: []string{"10.12.0.1/24"}}
	remote := net.ParseIP("198.51.100.2")
	host := u.hostA.Path()
	for _, tc := range []struct {
		name string
		ep   Endpoint
		opts VxlanOptions
		want error
	}{
		{"missing parent", ep, VxlanOptions{VNI: 1, Remote: remote, Parent: "nope0", HostNetns: host}, ErrNoParent},
		{"no route to remote", ep, VxlanOptions{VNI: 1, Remote: net.ParseIP("203.0.113.9"), HostNetns: host}, ErrNoParent},
		{"MTU above parent's", Endpoint{Netns: ep.Netns, Name: "vx0", MTU: 1460}, VxlanOptions{VNI: 1, Remote: remote, HostNetns: host}, ErrInvalid},
		{"host netns gone", ep, VxlanOptions{VNI: 1, Remote: remote, HostNetns: "/run/netns/rt-gone-x"}, ErrNetnsGone},
		{"pod netns gone", Endpoint{Netns: "/run/netns/rt-gone-y", Name: "vx0"}, VxlanOptions{VNI: 1, Remote: remote, HostNetns: host}, ErrNetnsGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Vxlan(testCtx(t), tc.ep, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			requireLinks(t, u.podA)
			requireLinks(t, u.hostA, "ul0")
		})
	}
	requireNoTempLinks(t, u.hostA, u.podA)
}

func TestVxlanSameVNITwiceInHostFailsWithErrVNIInUse(t *testing.T) {
	u := newUnderlay(t)
	ctx := testCtx(t)
	opts := VxlanOptions{VNI: 99, Remote: net.ParseIP("198.51.100.2"), HostNetns: u.hostA.Path()}
	if err := Vxlan(ctx, Endpoint{Netns: u.podA.Path(), Name: "vx0"}, opts); err != nil {
		t.Fatal(err)
	}
	err := Vxlan(ctx, Endpoint{Netns: u.podB.Path(), Name: "vx0"}, opts)
	if !errors.Is(err, ErrVNIInUse) {
		t.Fatalf("second vxlan with VNI 99: err = %v, want ErrVNIInUse", err)
	}
	requireLinks(t, u.podB)
	requireNoTempLinks(t, u.hostA, u.podA, u.podB)
}
