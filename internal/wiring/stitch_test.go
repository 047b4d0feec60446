package wiring

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/ifname"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// newL2Hosts makes n "hosts" on one underlay segment: a bridge in a switch
// netns (no host's iptables sees it) and in each host an interface ul0
// with hostAddr(i)/24, MTU 1500.
func newL2Hosts(t testing.TB, n int) []*testenv.NS {
	t.Helper()
	sw := testenv.NewNS(t)
	sw.MustExec(t, "ip", "link", "add", "br0", "type", "bridge")
	sw.MustExec(t, "ip", "link", "set", "br0", "up")
	hosts := make([]*testenv.NS, n)
	for i := range hosts {
		h := testenv.NewNS(t)
		port := fmt.Sprintf("sw%d", i)
		sw.MustExec(t, "ip", "link", "add", port, "mtu", "1500", "type", "veth", "peer", "name", "ul0", "mtu", "1500", "netns", h.Name)
		sw.MustExec(t, "ip", "link", "set", port, "master", "br0", "up")
		h.MustExec(t, "ip", "addr", "add", hostAddr(i)+"/24", "dev", "ul0")
		h.MustExec(t, "ip", "link", "set", "ul0", "up")
		hosts[i] = h
	}
	return hosts
}

// hostAddr is the underlay address of host i of newL2Hosts.
func hostAddr(i int) string { return fmt.Sprintf("198.51.100.%d", i+1) }

// deleteNS deletes a test netns before the test ends (its cleanup then
// finds nothing to do).
func deleteNS(t testing.TB, n *testenv.NS) {
	t.Helper()
	_ = n.Close()
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v: %s", n.Name, err, out)
	}
}

// tcFilter is what `tc filter show` says of the stitch filter on an
// ingress hook.
type tcFilter struct {
	ProgID   int
	ProgName string
}

var tcFilterRE = regexp.MustCompile(`handle 0x7273 ratchet-stitch direct-action .*\bid (\d+) name (\S+)`)

// ingressFilter reads the stitch filter on dev's ingress hook in host with
// tc (independently of the package's own netlink reading); ok is false
// when there is none.
func ingressFilter(t testing.TB, host *testenv.NS, dev string) (tcFilter, bool) {
	t.Helper()
	out, err := host.Exec("tc", "filter", "show", "dev", dev, "ingress")
	if err != nil {
		return tcFilter{}, false
	}
	m := tcFilterRE.FindStringSubmatch(out)
	if m == nil {
		return tcFilter{}, false
	}
	id, _ := strconv.Atoi(m[1])
	return tcFilter{ProgID: id, ProgName: m[2]}, true
}

// stitchState is what identifies a stitch in the kernel: both devices'
// indexes and the programs on their ingress hooks.
type stitchState struct {
	Vxlan, Parked           int
	VxlanProg, ParkedProg   int
	VxlanProgN, ParkedProgN string
}

// readStitch reads owner's stitch in host and checks that the programs
// redirect each device to the other (by their names, "rsx_<ifindex>").
func readStitch(t testing.TB, host *testenv.NS, owner string) stitchState {
	t.Helper()
	vx := mustLookup(t, host, StitchName(owner))
	pk := mustLookup(t, host, ParkedName(owner))
	fv, ok := ingressFilter(t, host, vx.Name)
	if !ok {
		t.Fatalf("no stitch filter on the ingress of %s", vx.Name)
	}
	fp, ok := ingressFilter(t, host, pk.Name)
	if !ok {
		t.Fatalf("no stitch filter on the ingress of %s", pk.Name)
	}
	s := stitchState{vx.Index, pk.Index, fv.ProgID, fp.ProgID, fv.ProgName, fp.ProgName}
	if s.ParkedProgN != fmt.Sprintf("rsx_%d", s.Vxlan) || s.VxlanProgN != fmt.Sprintf("rsx_%d", s.Parked) {
		t.Fatalf("redirects cross wrongly: %+v", s)
	}
	return s
}

// hostLinksWith returns the links of n whose names start with prefix.
func hostLinksWith(t testing.TB, n *testenv.NS, prefix string) []string {
	t.Helper()
	var out []string
	for _, l := range n.Links(t) {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// hasQdisc reports whether dev in n has a qdisc of the kind.
func hasQdisc(t testing.TB, n *testenv.NS, dev, kind string) bool {
	t.Helper()
	return strings.Contains(n.MustExec(t, "tc", "qdisc", "show", "dev", dev), "qdisc "+kind+" ")
}

// sysctl reads net.ipv6.conf.<dev>.<key> in n.
func sysctl(t testing.TB, n *testenv.NS, dev, key string) string {
	t.Helper()
	return strings.TrimSpace(n.MustExec(t, "cat", "/proc/sys/net/ipv6/conf/"+dev+"/"+key))
}

// parkedPair wires pods a (192.0.2.1/24) and b (192.0.2.2/24) on host with
// a veth of owner, both named ifname, parks b's end in host and deletes b.
func parkedPair(t testing.TB, host *testenv.NS, owner, ifname string) (a *testenv.NS, ep Endpoint) {
	t.Helper()
	pa, pb := testenv.NewNS(t), testenv.NewNS(t)
	ea := Endpoint{Netns: pa.Path(), Name: ifname, Owner: owner, Addresses: []string{"192.0.2.1/24"}}
	eb := Endpoint{Netns: pb.Path(), Name: ifname, Owner: owner, Addresses: []string{"192.0.2.2/24"}}
	if err := VethPair(testCtx(t), ea, eb); err != nil {
		t.Fatal(err)
	}
	if err := Park(testCtx(t), pb.Path(), ifname, owner, host.Path()); err != nil {
		t.Fatal(err)
	}
	deleteNS(t, pb)
	return pa, ea
}

// The survivor of a parked same-host veth reaches the peer's next
// incarnation on another host, then on a third, then (unstitched and
// unparked) on its own host again, always on the same interface.
func TestStitchCarriesAParkedVethAcrossHosts(t *testing.T) {
	hosts := newL2Hosts(t, 3)
	hA, hB, hC := hosts[0], hosts[1], hosts[2]
	ctx := testCtx(t)
	const owner, vni = "a.net1--b.net1", 5100
	pa, _ := parkedPair(t, hA, owner, "net1")
	before := mustLookup(t, pa, "net1")
	requireSameIndex := func(when string) {
		t.Helper()
		if now := mustLookup(t, pa, "net1"); now.Index != before.Index || !now.HasAddress("192.0.2.1/24") {
			t.Fatalf("%s: a's net1 index %d (was %d) addresses %v", when, now.Index, before.Index, now.Addresses)
		}
	}
	if mustLookup(t, pa, "net1").OperUp {
		t.Fatal("a has carrier with its peer parked")
	}

	// 1. The peer comes back on host B.
	pc := testenv.NewNS(t)
	c := Endpoint{Netns: pc.Path(), Name: "net1", Owner: owner, Addresses: []string{"192.0.2.2/24"}}
	if err := Vxlan(ctx, c, VxlanOptions{VNI: vni, Remote: net.ParseIP(hostAddr(0)), HostNetns: hB.Path()}); err != nil {
		t.Fatal(err)
	}
	toB := VxlanOptions{VNI: vni, Remote: net.ParseIP(hostAddr(1))}
	if err := Stitch(ctx, hA.Path(), owner, 0, toB); err != nil {
		t.Fatal(err)
	}
	requirePing(t, pa, "192.0.2.2")
	requirePing(t, pc, "192.0.2.1")
	requireSameIndex("stitched to host B")
	if !mustLookup(t, pa, "net1").OperUp {
		t.Error("a has no carrier once stitched")
	}
	vx := mustLookup(t, hA, StitchName(owner))
	if vx.Kind != "vxlan" || !vx.Ours || vx.Owner != owner || vx.VNI != vni || vx.Remote.String() != hostAddr(1) ||
		vx.Port != DefaultVxlanPort || vx.MTU != 1450 || !vx.AdminUp {
		t.Errorf("stitch vxlan: %+v", vx)
	}
	if len(vx.Addresses) != 0 {
		t.Errorf("stitch vxlan has addresses %v (IPv6 should be disabled)", vx.Addresses)
	}
	pk := mustLookup(t, hA, ParkedName(owner))
	if !pk.AdminUp || !pk.OperUp || len(pk.Addresses) != 0 {
		t.Errorf("parked end: up %v carrier %v addresses %v", pk.AdminUp, pk.OperUp, pk.Addresses)
	}
	for _, dev := range []string{vx.Name, pk.Name} {
		if v := sysctl(t, hA, dev, "disable_ipv6"); v != "1" {
			t.Errorf("disable_ipv6 on %s = %s, want 1", dev, v)
		}
	}
	if err := CheckStitch(ctx, hA.Path(), owner, toB); err != nil {
		t.Errorf("CheckStitch: %v", err)
	}
	// A full-size frame of the survivor (MTU 1500) crosses the 1450-byte
	// vxlan: bpf_redirect checks no MTU, and the outer packet is
	// fragmented on the underlay.
	if _, err := pa.Exec("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", "192.0.2.2"); err != nil {
		t.Errorf("a 1500-byte frame does not cross the stitch: %v", err)
	}

	// 2. Again: nothing changes in the kernel.
	first := readStitch(t, hA, owner)
	if err := Stitch(ctx, hA.Path(), owner, 0, toB); err != nil {
		t.Fatal(err)
	}
	if again := readStitch(t, hA, owner); again != first {
		t.Fatalf("second Stitch changed the kernel: %+v, was %+v", again, first)
	}

	// 3. The peer moves to host C: the stitch is re-pointed in place.
	if err := Remove(ctx, pc.Path(), "net1"); err != nil {
		t.Fatal(err)
	}
	pd := testenv.NewNS(t)
	d := Endpoint{Netns: pd.Path(), Name: "net1", Owner: owner, Addresses: []string{"192.0.2.2/24"}}
	if err := Vxlan(ctx, d, VxlanOptions{VNI: vni, Remote: net.ParseIP(hostAddr(0)), HostNetns: hC.Path()}); err != nil {
		t.Fatal(err)
	}
	if err := pa.Ping("192.0.2.2"); err == nil {
		t.Fatal("a reaches d while the stitch still points at host B")
	}
	toC := VxlanOptions{VNI: vni, Remote: net.ParseIP(hostAddr(2))}
	err := CheckStitch(ctx, hA.Path(), owner, toC)
	if err == nil || !strings.Contains(err.Error(), "remote "+hostAddr(1)+", want "+hostAddr(2)) {
		t.Errorf("CheckStitch towards C while pointing at B = %v, want the remote named", err)
	}
	if err := Stitch(ctx, hA.Path(), owner, 0, toC); err != nil {
		t.Fatal(err)
	}
	requirePing(t, pa, "192.0.2.2")
	requirePing(t, pd, "192.0.2.1")
	requireSameIndex("re-pointed to host C")
	if moved := readStitch(t, hA, owner); moved != first {
		t.Errorf("re-point rebuilt the stitch: %+v, was %+v", moved, first)
	}
	if got := mustLookup(t, hA, StitchName(owner)).Remote.String(); got != hostAddr(2) {
		t.Errorf("stitch remote %s, want %s", got, hostAddr(2))
	}
	if err := CheckStitch(ctx, hA.Path(), owner, toC); err != nil {
		t.Errorf("CheckStitch: %v", err)
	}
	if err := CheckStitch(ctx, hA.Path(), owner, toB); err == nil || !strings.Contains(err.Error(), "remote") {
		t.Errorf("CheckStitch towards B = %v, want the remote named", err)
	}
	if err := CheckStitch(ctx, hA.Path(), owner, VxlanOptions{VNI: vni + 1, Remote: toC.Remote}); err == nil || !strings.Contains(err.Error(), "VNI") {
		t.Errorf("CheckStitch with another VNI = %v, want the VNI named", err)
	}

	// 4. Unstitch, then the peer comes back on host A.
	if err := Unstitch(ctx, hA.Path(), owner); err != nil {
		t.Fatal(err)
	}
	if left := hostLinksWith(t, hA, stitchPrefix); len(left) != 0 {
		t.Errorf("left after Unstitch: %v", left)
	}
	pk = mustLookup(t, hA, ParkedName(owner))
	if pk.AdminUp || hasQdisc(t, hA, pk.Name, "clsact") {
		t.Errorf("parked end after Unstitch: up %v, clsact %v", pk.AdminUp, hasQdisc(t, hA, pk.Name, "clsact"))
	}
	if mustLookup(t, pa, "net1").OperUp {
		t.Error("a has carrier after Unstitch")
	}
	if err := CheckStitch(ctx, hA.Path(), owner, toC); !errors.Is(err, ErrNotFound) {
		t.Errorf("CheckStitch after Unstitch = %v, want ErrNotFound", err)
	}
	if err := Unstitch(ctx, hA.Path(), owner); err != nil {
		t.Errorf("second Unstitch: %v", err)
	}
	pe := testenv.NewNS(t)
	e := Endpoint{Netns: pe.Path(), Name: "net1", Owner: owner, Addresses: []string{"192.0.2.2/24"}}
	if err := Unpark(ctx, e, hA.Path()); err != nil {
		t.Fatal(err)
	}
	requirePing(t, pa, "192.0.2.2")
	requirePing(t, pe, "192.0.2.1")
	requireSameIndex("unparked on host A")
	requireLinks(t, hA, "ul0")
	requireNoTempLinks(t, hA, pa, pe)
}

// Unpark of a stitched end undoes the stitch: the vxlan goes, and the end
// arrives in the pod without clsact or redirect, with the pod's IPv6
// defaults.
func TestUnparkUndoesAStitch(t *testing.T) {
	hosts := newL2Hosts(t, 2)
	hA := hosts[0]
	ctx := testCtx(t)
	const owner = "a.in1--b.in1"
	pa, _ := parkedPair(t, hA, owner, "in1")
	before := mustLookup(t, pa, "in1")
	if err := Stitch(ctx, hA.Path(), owner, 1400, VxlanOptions{VNI: 5200, Remote: net.ParseIP(hostAddr(1))}); err != nil {
		t.Fatal(err)
	}
	if vx := mustLookup(t, hA, StitchName(owner)); vx.MTU != 1400 {
		t.Errorf("stitch MTU %d, want 1400", vx.MTU)
	}
	pe := testenv.NewNS(t)
	e := Endpoint{Netns: pe.Path(), Name: "in1", Owner: owner, Addresses: []string{"192.0.2.2/24"}}
	if err := Unpark(ctx, e, hA.Path()); err != nil {
		t.Fatal(err)
	}
	requireLinks(t, hA, "ul0")
	requirePing(t, pa, "192.0.2.2")
	if now := mustLookup(t, pa, "in1"); now.Index != before.Index {
		t.Errorf("a's in1 index %d, was %d", now.Index, before.Index)
	}
	if hasQdisc(t, pe, "in1", "clsact") {
		t.Error("the unparked end carries a clsact qdisc into the pod")
	}
	if _, ok := ingressFilter(t, pe, "in1"); ok {
		t.Error("the unparked end carries the redirect into the pod")
	}
	want := strings.TrimSpace(pe.MustExec(t, "cat", "/proc/sys/net/ipv6/conf/default/disable_ipv6"))
	if got := sysctl(t, pe, "in1", "disable_ipv6"); got != want {
		t.Errorf("disable_ipv6 on the unparked end %s, the pod's default %s", got, want)
	}
}

// Parking a fresh end of a link removes a stale stitch of that link with
// the stale parked end.
func TestParkRemovesAStaleStitch(t *testing.T) {
	hosts := newL2Hosts(t, 2)
	hA := hosts[0]
	ctx := testCtx(t)
	const owner = "a.in2--b.in2"
	parkedPair(t, hA, owner, "in2")
	if err := Stitch(ctx, hA.Path(), owner, 0, VxlanOptions{VNI: 5300, Remote: net.ParseIP(hostAddr(1))}); err != nil {
		t.Fatal(err)
	}
	parkedPair(t, hA, owner, "in2")
	requireLinks(t, hA, "ul0", ParkedName(owner))
	if hasQdisc(t, hA, ParkedName(owner), "clsact") {
		t.Error("the fresh parked end has a clsact qdisc")
	}
}

// Errors are reported before anything is touched, and a failure after the
// vxlan was created removes it again.
func TestStitchErrorsLeaveNothing(t *testing.T) {
	hosts := newL2Hosts(t, 2)
	hA := hosts[0]
	ctx := testCtx(t)
	const owner = "a.in3--b.in3"
	remote := net.ParseIP(hostAddr(1))
	good := VxlanOptions{VNI: 5400, Remote: remote}

	if err := Stitch(ctx, hA.Path(), owner, 0, good); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stitch with nothing parked = %v, want ErrNotFound", err)
	}
	requireLinks(t, hA, "ul0")
	if err := Unstitch(ctx, hA.Path(), owner); err != nil {
		t.Errorf("Unstitch with nothing there = %v", err)
	}
	if err := Unstitch(ctx, "/run/netns/rt-gone-s", owner); err != nil {
		t.Errorf("Unstitch in a netns that is gone = %v", err)
	}

	parkedPair(t, hA, owner, "in3")
	parked := ParkedName(owner)
	if err := Unstitch(ctx, hA.Path(), owner); err != nil {
		t.Errorf("Unstitch of an end not stitched = %v", err)
	}
	for _, tc := range []struct {
		name      string
		host, own string
		mtu       int
		opts      VxlanOptions
		want      error
	}{
		{"VNI 0", hA.Path(), owner, 0, VxlanOptions{Remote: remote}, ErrInvalid},
		{"VNI too large", hA.Path(), owner, 0, VxlanOptions{VNI: 1 << 24, Remote: remote}, ErrInvalid},
		{"no remote", hA.Path(), owner, 0, VxlanOptions{VNI: 1}, ErrBadAddress},
		{"multicast remote", hA.Path(), owner, 0, VxlanOptions{VNI: 1, Remote: net.ParseIP("239.1.1.1")}, ErrBadAddress},
		{"negative MTU", hA.Path(), owner, -1, good, ErrInvalid},
		{"MTU above the parent's", hA.Path(), owner, 1451, good, ErrMTU},
		{"empty owner", hA.Path(), "", 0, good, ErrInvalid},
		{"NUL in owner", hA.Path(), "a\x00b", 0, good, ErrInvalid},
		{"long owner", hA.Path(), strings.Repeat("x", maxOwnerLen+1), 0, good, ErrInvalid},
		{"empty host netns", "", owner, 0, good, ErrInvalid},
		{"host netns gone", "/run/netns/rt-gone-s", owner, 0, good, ErrNetnsGone},
		{"missing parent", hA.Path(), owner, 0, VxlanOptions{VNI: 1, Remote: remote, Parent: "nope0"}, ErrNoParent},
		{"no route", hA.Path(), owner, 0, VxlanOptions{VNI: 1, Remote: net.ParseIP("203.0.113.9")}, ErrNoParent},
		{"parked end of another link", hA.Path(), "c.x--d.x", 0, good, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Stitch(testCtx(t), tc.host, tc.own, tc.mtu, tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			requireLinks(t, hA, "ul0", parked)
			if hasQdisc(t, hA, parked, "clsact") {
				t.Error("clsact added to the parked end")
			}
		})
	}

	// A VNI taken by a pod's vxlan end on this host.
	pv := testenv.NewNS(t)
	if err := Vxlan(ctx, Endpoint{Netns: pv.Path(), Name: "vx0"}, VxlanOptions{VNI: 77, Remote: remote, HostNetns: hA.Path()}); err != nil {
		t.Fatal(err)
	}
	if err := Stitch(ctx, hA.Path(), owner, 0, VxlanOptions{VNI: 77, Remote: remote}); !errors.Is(err, ErrVNIInUse) {
		t.Errorf("Stitch on a VNI in use = %v, want ErrVNIInUse", err)
	}
	requireLinks(t, hA, "ul0", parked)

	// A failure after the vxlan was made (a foreign filter holds the
	// priority on the parked end's ingress) removes it again.
	hA.MustExec(t, "tc", "qdisc", "add", "dev", parked, "clsact")
	hA.MustExec(t, "tc", "filter", "add", "dev", parked, "ingress", "protocol", "ip", "pref", strconv.Itoa(int(stitchPriority)),
		"handle", "1", "bpf", "bytecode", "1,6 0 0 0")
	if err := Stitch(ctx, hA.Path(), owner, 0, good); err == nil {
		t.Error("Stitch with the filter priority taken succeeded")
	}
	requireLinks(t, hA, "ul0", parked)
	if out := hA.MustExec(t, "tc", "filter", "show", "dev", parked, "ingress"); !strings.Contains(out, "handle 0x1") {
		t.Errorf("the foreign filter is gone: %q", out)
	}
	hA.MustExec(t, "tc", "qdisc", "del", "dev", parked, "clsact")

	// The stitch's name held by an interface ratchet did not make.
	stitch := StitchName(owner)
	hA.MustExec(t, "ip", "link", "add", stitch, "type", "ifb")
	held := mustLookup(t, hA, stitch)
	if err := Stitch(ctx, hA.Path(), owner, 0, good); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Stitch with its name held = %v, want ErrNotOwned", err)
	}
	if err := Unstitch(ctx, hA.Path(), owner); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Unstitch with its name held = %v, want ErrNotOwned", err)
	}
	if err := CheckStitch(ctx, hA.Path(), owner, good); !errors.Is(err, ErrNotOwned) {
		t.Errorf("CheckStitch with its name held = %v, want ErrNotOwned", err)
	}
	if now := mustLookup(t, hA, stitch); now.Index != held.Index || now.Kind != "ifb" || hasQdisc(t, hA, stitch, "clsact") {
		t.Errorf("the foreign %s was touched: %+v", stitch, now)
	}
	if hasQdisc(t, hA, parked, "clsact") || mustLookup(t, hA, parked).AdminUp {
		t.Error("the parked end was touched")
	}
	hA.MustExec(t, "ip", "link", "del", stitch)

	// The parked name held by an interface ratchet did not make.
	other := "e.x--f.x"
	hA.MustExec(t, "ip", "link", "add", ParkedName(other), "type", "ifb")
	if err := Stitch(ctx, hA.Path(), other, 0, good); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Stitch of a foreign parked end = %v, want ErrNotOwned", err)
	}
	requireLinks(t, hA, "ul0", parked, ParkedName(other))
	requireNoTempLinks(t, hA)
}

// Lookup reports the stitch vxlan as ratchet's; RemoveOwned removes it
// for its link only; a later Stitch rebuilds it.
func TestStitchVxlanIsOwned(t *testing.T) {
	hosts := newL2Hosts(t, 2)
	hA := hosts[0]
	ctx := testCtx(t)
	const owner = "a.in4--b.in4"
	opts := VxlanOptions{VNI: 5500, Remote: net.ParseIP(hostAddr(1)), Port: 8472, Parent: "ul0", Local: net.ParseIP(hostAddr(0))}
	parkedPair(t, hA, owner, "in4")
	if err := Stitch(ctx, hA.Path(), owner, 0, opts); err != nil {
		t.Fatal(err)
	}
	if vx := mustLookup(t, hA, StitchName(owner)); !vx.Ours || vx.Owner != owner || vx.Port != 8472 {
		t.Errorf("stitch vxlan: ours %v owner %q port %d", vx.Ours, vx.Owner, vx.Port)
	}
	first := readStitch(t, hA, owner)
	// Another port: the vxlan is replaced, and the parked end's redirect
	// follows its new index.
	opts.Port = 4790
	if err := Stitch(ctx, hA.Path(), owner, 0, opts); err != nil {
		t.Fatal(err)
	}
	second := readStitch(t, hA, owner)
	if second.Vxlan == first.Vxlan || second.Parked != first.Parked || second.ParkedProg == first.ParkedProg {
		t.Errorf("stitch on another port: %+v, was %+v", second, first)
	}
	if err := CheckStitch(ctx, hA.Path(), owner, opts); err != nil {
		t.Errorf("CheckStitch: %v", err)
	}
	if err := RemoveOwned(ctx, hA.Path(), StitchName(owner), "c.x--d.x"); !errors.Is(err, ErrNotOwned) {
		t.Errorf("RemoveOwned for another link = %v, want ErrNotOwned", err)
	}
	if err := RemoveOwned(ctx, hA.Path(), StitchName(owner), owner); err != nil {
		t.Fatal(err)
	}
	requireLinks(t, hA, "ul0", ParkedName(owner))
	err := CheckStitch(ctx, hA.Path(), owner, opts)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), StitchName(owner)) {
		t.Errorf("CheckStitch without the vxlan = %v, want ErrNotFound naming it", err)
	}
	// The parked end still redirects to the removed vxlan's index: a new
	// Stitch points it at the new one.
	if err := Stitch(ctx, hA.Path(), owner, 0, opts); err != nil {
		t.Fatal(err)
	}
	if err := CheckStitch(ctx, hA.Path(), owner, opts); err != nil {
		t.Errorf("CheckStitch after rebuilding: %v", err)
	}
	// A redirect pointing elsewhere is reported.
	hA.MustExec(t, "tc", "filter", "del", "dev", StitchName(owner), "ingress")
	err = CheckStitch(ctx, hA.Path(), owner, opts)
	if err == nil || !strings.Contains(err.Error(), "no redirect filter "+stitchFilterName+" on the ingress of "+StitchName(owner)) {
		t.Errorf("CheckStitch without the vxlan's redirect = %v", err)
	}
	if n, err := RemoveAllOwned(ctx, hA.Path()); err != nil || n != 2 {
		t.Errorf("RemoveAllOwned = %d, %v; want the stitch and the parked end", n, err)
	}
	requireLinks(t, hA, "ul0")
}

// The program's tag is what Stitch recognises a redirect by.
func TestRedirectProgramTagMatchesTheKernel(t *testing.T) {
	testenv.RequireRoot(t)
	for _, idx := range []int{1, 7, 1 << 20} {
		prog, err := loadRedirect(idx)
		if err != nil {
			t.Fatal(err)
		}
		info, err := prog.Info()
		prog.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range []int{idx, idx + 1} {
			ok, err := redirectInstructions(other).HasTag(info.Tag, nativeOrder())
			if err != nil || ok != (other == idx) {
				t.Errorf("program to #%d (tag %s) matches the instructions to #%d: %v, %v", idx, info.Tag, other, ok, err)
			}
		}
	}
}

// FuzzStitchNames checks that every link ID accepted gives valid, distinct
// interface names.
func FuzzStitchNames(f *testing.F) {
	for _, s := range []string{"a.in1--b.in1", "", "x", "a\x00b", strings.Repeat("y", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, owner string) {
		if validateStitch("/run/netns/x", owner) != nil {
			return
		}
		s, p := StitchName(owner), ParkedName(owner)
		for _, n := range []string{s, p} {
			if ValidateName(n) != nil || len(n) != ifname.MaxLen {
				t.Fatalf("owner %q: name %q", owner, n)
			}
		}
		if s[3:] != p[3:] || s == p || strings.HasPrefix(s, tempPrefix) {
			t.Fatalf("owner %q: %q and %q", owner, s, p)
		}
	})
}

func BenchmarkStitch(b *testing.B) {
	hosts := newL2Hosts(b, 2)
	hA := hosts[0]
	ctx := testCtx(b)
	const owner = "a.in5--b.in5"
	parkedPair(b, hA, owner, "in5")
	opts := VxlanOptions{VNI: 5600, Remote: net.ParseIP(hostAddr(1))}
	var ct createTimer
	b.ReportAllocs()
	for b.Loop() {
		ct.begin()
		if err := Stitch(ctx, hA.Path(), owner, 0, opts); err != nil {
			b.Fatal(err)
		}
		ct.end()
		if err := Unstitch(ctx, hA.Path(), owner); err != nil {
			b.Fatal(err)
		}
	}
	ct.report(b)
}

// BenchmarkStitchUnchanged is a Stitch that finds everything right (what a
// resync pays): lookups and filter dumps, no program loaded.
func BenchmarkStitchUnchanged(b *testing.B) {
	hosts := newL2Hosts(b, 2)
	hA := hosts[0]
	ctx := testCtx(b)
	const owner = "a.in6--b.in6"
	parkedPair(b, hA, owner, "in6")
	opts := VxlanOptions{VNI: 5700, Remote: net.ParseIP(hostAddr(1))}
	if err := Stitch(ctx, hA.Path(), owner, 0, opts); err != nil {
		b.Fatal(err)
	}
	first := readStitch(b, hA, owner)
	b.ReportAllocs()
	for b.Loop() {
		if err := Stitch(ctx, hA.Path(), owner, 0, opts); err != nil {
			b.Fatal(err)
		}
	}
	if again := readStitch(b, hA, owner); again != first {
		b.Fatalf("Stitch changed the kernel: %+v, was %+v", again, first)
	}
}
