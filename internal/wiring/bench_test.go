package wiring

import (
	"net"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// The IPCommands benchmarks do the same work as their netlink twins with
// one `ip` process per step: create under temporary names directly in the
// target netns, add IPv4 and IPv6 (nodad) addresses, rename, set up,
// delete. Each benchmark also reports create-ms/op, the time until the link
// is up, because deletion (the kernel's RCU grace periods) dominates.

// createTimer sums the time spent creating links.
type createTimer struct {
	start time.Time
	total time.Duration
}

func (c *createTimer) begin() { c.start = time.Now() }
func (c *createTimer) end()   { c.total += time.Since(c.start) }
func (c *createTimer) report(b *testing.B) {
	b.ReportMetric(float64(c.total.Microseconds())/1000/float64(b.N), "create-ms/op")
}

func BenchmarkVethPair(b *testing.B) {
	na, nb := testenv.NewNS(b), testenv.NewNS(b)
	ctx := testCtx(b)
	ea := Endpoint{Netns: na.Path(), Name: "eth1", Addresses: []string{"192.0.2.1/24", "2001:db8:1::1/64"}}
	eb := Endpoint{Netns: nb.Path(), Name: "eth1", Addresses: []string{"192.0.2.2/24", "2001:db8:1::2/64"}}
	var ct createTimer
	b.ReportAllocs()
	for b.Loop() {
		ct.begin()
		if err := VethPair(ctx, ea, eb); err != nil {
			b.Fatal(err)
		}
		ct.end()
		if err := Remove(ctx, ea.Netns, ea.Name); err != nil {
			b.Fatal(err)
		}
	}
	ct.report(b)
}

func BenchmarkVethPairIPCommands(b *testing.B) {
	na, nb := testenv.NewNS(b), testenv.NewNS(b)
	var ct createTimer
	for b.Loop() {
		ct.begin()
		ta, tb := tempName(), tempName()
		na.MustExec(b, "ip", "link", "add", ta, "mtu", "1500", "type", "veth", "peer", "name", tb, "mtu", "1500", "netns", nb.Name)
		na.MustExec(b, "ip", "addr", "add", "192.0.2.1/24", "dev", ta)
		na.MustExec(b, "ip", "addr", "add", "2001:db8:1::1/64", "dev", ta, "nodad")
		na.MustExec(b, "ip", "link", "set", ta, "name", "eth1")
		na.MustExec(b, "ip", "link", "set", "eth1", "up")
		nb.MustExec(b, "ip", "addr", "add", "192.0.2.2/24", "dev", tb)
		nb.MustExec(b, "ip", "addr", "add", "2001:db8:1::2/64", "dev", tb, "nodad")
		nb.MustExec(b, "ip", "link", "set", tb, "name", "eth1")
		nb.MustExec(b, "ip", "link", "set", "eth1", "up")
		ct.end()
		na.MustExec(b, "ip", "link", "del", "eth1")
	}
	ct.report(b)
}

func BenchmarkVxlan(b *testing.B) {
	u := newUnderlay(b)
	ctx := testCtx(b)
	ep := Endpoint{Netns: u.podA.Path(), Name: "vx0", Addresses: []string{"10.10.0.1/24", "2001:db8:10::1/64"}}
	opts := VxlanOptions{VNI: 42, Remote: net.ParseIP("198.51.100.2"), HostNetns: u.hostA.Path()}
	var ct createTimer
	b.ReportAllocs()
	for b.Loop() {
		ct.begin()
		if err := Vxlan(ctx, ep, opts); err != nil {
			b.Fatal(err)
		}
		ct.end()
		if err := Remove(ctx, ep.Netns, ep.Name); err != nil {
			b.Fatal(err)
		}
	}
	ct.report(b)
}

func BenchmarkVxlanIPCommands(b *testing.B) {
	u := newUnderlay(b)
	var ct createTimer
	for b.Loop() {
		ct.begin()
		tmp := tempName()
		u.hostA.MustExec(b, "ip", "link", "add", tmp, "netns", u.podA.Name, "mtu", "1450", "type", "vxlan",
			"id", "42", "remote", "198.51.100.2", "dev", "ul0", "dstport", "4789")
		u.podA.MustExec(b, "ip", "addr", "add", "10.10.0.1/24", "dev", tmp)
		u.podA.MustExec(b, "ip", "addr", "add", "2001:db8:10::1/64", "dev", tmp, "nodad")
		u.podA.MustExec(b, "ip", "link", "set", tmp, "name", "vx0")
		u.podA.MustExec(b, "ip", "link", "set", "vx0", "up")
		ct.end()
		u.podA.MustExec(b, "ip", "link", "del", "vx0")
	}
	ct.report(b)
}
