package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/impair"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// the admin state and a run-time impairment are kept across the
// RE-CREATION of one pod (not only an agent restart): issue 14, "recorded
// as the link's admin state, kept across agent restarts and pod
// re-creation".
func TestDownAndImpairmentKeptAcrossPodRecreation(t *testing.T) {
	recreateKeepsLinkState(t, false)
}

// The same, the peer re-created on the OTHER host (the survivor's
// interface is rebuilt there: a known defect being fixed; the admin state
// and impairment must hold all the same). While the link is set down, a
// ping runs from the survivor during the re-creation: no reply may come.
func TestDownKeptAcrossPodRecreationOnAnotherHost(t *testing.T) {
	recreateKeepsLinkState(t, true)
}

func recreateKeepsLinkState(t *testing.T, otherHost bool) {
	c := testcluster.New(t, "v3", 2)
	host := func(p *testcluster.Pod) *testcluster.Host {
		if !otherHost {
			return p.H
		}
		if p.H == c.Hosts[0] {
			return c.Hosts[1]
		}
		return c.Hosts[0]
	}
	xa, xb, sa, sb := twoPairs(c, [4]string{"192.0.2.1/30", "192.0.2.2/30", "198.51.100.1/30", "198.51.100.2/30"})
	type pair struct {
		name   string
		a, b   *testcluster.Pod
		ifname string
		bIP    string
		id     string
	}
	pairs := []*pair{
		{"across hosts", xa, xb, "x1", "192.0.2.2", store.LinkID("xa", "x1", "xb", "x1")},
		{"one host", sa, sb, "s1", "198.51.100.2", store.LinkID("sa", "s1", "sb", "s1")},
	}
	noCarrier := func(p *pair) (bool, string) {
		var s []string
		ok := true
		for _, q := range []*testcluster.Pod{p.a, p.b} {
			info, err := wiring.Lookup(context.Background(), q.Netns, p.ifname)
			if err != nil {
				s = append(s, q.Name+": "+err.Error())
				ok = false
				continue
			}
			if info.OperUp {
				ok = false
			}
			s = append(s, q.Name+": admin "+upDown(info.AdminUp)+" oper "+upDown(info.OperUp))
		}
		return ok, strings.Join(s, ", ")
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			if r := p.a.PingStats(p.bIP, 3, "0.2"); r.Received != 3 {
				t.Fatalf("before: %v", r)
			}
			// 1. down, then the peer re-created on its host.
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.Admin = store.AdminDown })
			if !testcluster.WaitFor(5*time.Second, func() bool { ok, _ := noCarrier(p); return ok }) {
				_, s := noCarrier(p)
				t.Fatalf("link down: %s", s)
			}
			p.b.MustDel()
			nb := host(p.b).NewPod(p.b.Name)
			pinged := make(chan testenv.PingResult, 1)
			go func() { pinged <- p.a.PingStats(p.bIP, 300, "0.01") }()
			time.Sleep(100 * time.Millisecond)
			nb.MustAdd()
			p.b = nb
			if r := <-pinged; r.Received != 0 {
				t.Errorf("link set down: a ping during the peer's re-creation got %v, want no reply", r)
			}
			if !testcluster.WaitFor(5*time.Second, func() bool {
				r := c.Link(p.a.Name, p.ifname, p.b.Name, p.ifname)
				return r.State == store.LinkWired
			}) {
				t.Fatalf("re-created peer: link never wired: %+v", c.Link(p.a.Name, p.ifname, p.b.Name, p.ifname))
			}
			time.Sleep(1500 * time.Millisecond) // the agents' reconcile
			if ok, s := noCarrier(p); !ok {
				t.Errorf("link set down, peer re-created: an end has carrier again (%s); record admin %q", s, c.Link(p.a.Name, p.ifname, p.b.Name, p.ifname).Admin)
			}
			if r := p.a.PingStats(p.bIP, 3, "0.2"); r.Received != 0 {
				t.Errorf("link set down, peer re-created: %v, want no reply", r)
			}
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.Admin = store.AdminUp })
			if !testcluster.WaitFor(5*time.Second, func() bool { return p.a.Ping(p.bIP) == nil }) {
				_, s := noCarrier(p)
				t.Fatalf("link up after the re-creation: no ping (%s)", s)
			}

			// 2. a run-time impairment (loss 100% on both ends), then the
			// peer re-created on its host.
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.A.Netem, r.B.Netem = &netem.Spec{Loss: "100%"}, &netem.Spec{Loss: "100%"} })
			if !testcluster.WaitFor(10*time.Second, func() bool {
				r := c.Link(p.a.Name, p.ifname, p.b.Name, p.ifname)
				return both(r.A.Applied, r.B.Applied)
			}) {
				t.Fatalf("loss 100%%: never applied")
			}
			p.b.MustDel()
			nb = host(p.b).NewPod(p.b.Name)
			nb.MustAdd()
			p.b = nb
			if !testcluster.WaitFor(10*time.Second, func() bool {
				r := c.Link(p.a.Name, p.ifname, p.b.Name, p.ifname)
				return r.State == store.LinkWired && both(r.A.Applied, r.B.Applied)
			}) {
				r := c.Link(p.a.Name, p.ifname, p.b.Name, p.ifname)
				t.Errorf("loss 100%% kept across re-creation: record %s, a %v applied %q, b %v applied %q", r.State, r.A.Netem, r.A.Applied, r.B.Netem, r.B.Applied)
			}
			if r := p.a.PingStats(p.bIP, 5, "0.2"); r.Received != 0 {
				t.Errorf("loss 100%%, peer re-created: %v, want no reply", r)
			}
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.A.Netem, r.B.Netem = nil, nil })
			if !testcluster.WaitFor(5*time.Second, func() bool { return p.a.Ping(p.bIP) == nil }) {
				t.Fatalf("cleared after the re-creation: no ping")
			}
			if err := p.a.Check(); err != nil {
				t.Errorf("CHECK a: %v", err)
			}
			if err := p.b.Check(); err != nil {
				t.Errorf("CHECK b: %v", err)
			}
		})
	}
	for _, p := range pairs {
		p.a.MustDel()
		p.b.MustDel()
	}
	c.AssertNothingLeft()
}

func upDown(b bool) string {
	if b {
		return "up"
	}
	return "down"
}

// a bad impairment in an announced record (ratchet.links netem,
// ratchet.netem) fails ADD with code 7 naming the field, creating nothing.
func TestBadNetemIsCode7NamingTheField(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	cases := []struct{ name, key, k, v string }{
		{"loss 101%", "ratchet.links[0].netem.loss", "ratchet.links", linkEntry(`,"ip":"192.0.2.1/30","peer_ip":"192.0.2.2/30","netem":{"loss":"101%"}`)},
		{"rate 5", "ratchet.links[0].local_netem.rate", "ratchet.links", linkEntry(`,"local_netem":{"rate":"5"}`)},
		{"delay -1ms", "ratchet.links[0].peer_netem.delay", "ratchet.links", linkEntry(`,"peer_netem":{"delay":"-1ms"}`)},
		{"delay number", "ratchet.links[0].netem.delay", "ratchet.links", linkEntry(`,"netem":{"delay":20}`)},
		{"huge rate", "ratchet.netem.rate", "ratchet.netem", `{"rate":"999999999999tbit"}`},
		{"NaN loss", "ratchet.netem.loss", "ratchet.netem", `{"loss":"NaN%"}`},
		{"jitter alone", "ratchet.netem.jitter", "ratchet.netem", `{"jitter":"5ms"}`},
		{"unknown key", "ratchet.netem", "ratchet.netem", `{"los":"5%"}`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("badnetem-%d", i)
			key := c.Keys.Announce(metadata.DefaultNamespace, name)
			if _, err := store.PutJSON(context.Background(), c.KV, key, badLabels(name, tc.k, tc.v)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.KV.Delete(context.Background(), key, 0) })
			pod := c.Hosts[0].NewPod(name)
			err := pod.Add()
			var te *types.Error
			if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, tc.key) {
				t.Errorf("ADD = %v, want code 7 naming %s", err, tc.key)
			} else {
				t.Logf("ADD: %s", te.Msg)
			}
			if err == nil {
				_ = pod.Del()
			}
			c.AssertNothingLeft()
		})
	}
}

// a link record changed fast (impairments and admin state, 40
// writes without a pause) ends with the kernel carrying what the last
// record says on both ends, within the resync.
func TestFastRecordChangesSettleOnTheLast(t *testing.T) {
	c := testcluster.New(t, "v3", 2)
	xa, xb, sa, sb := twoPairs(c, [4]string{"192.0.2.1/30", "192.0.2.2/30", "198.51.100.1/30", "198.51.100.2/30"})
	caps, err := impair.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	specs := []*netem.Spec{{Loss: "100%"}, nil, {Rate: "1mbit"}, {Loss: "30%", Corrupt: "1%"}, {Duplicate: "5%"}, {Rate: "10mbit", Loss: "1%"}}
	for _, pr := range [][2]*testcluster.Pod{{xa, xb}, {sa, sb}} {
		a, b := pr[0], pr[1]
		id := store.LinkID(a.Name, a.H.Name[:0]+map[string]string{"xa": "x1", "sa": "s1"}[a.Name], b.Name, map[string]string{"xb": "x1", "sb": "s1"}[b.Name])
		ifname := map[string]string{"xa": "x1", "sa": "s1"}[a.Name]
		var last store.LinkRecord
		for i := 0; i < 40; i++ {
			sa, sb := specs[i%len(specs)], specs[(i+3)%len(specs)]
			down := i%3 == 0
			last, _, err = store.Update(context.Background(), c.KV, c.Keys.Link("default", id), func(r *store.LinkRecord) error {
				r.A.Netem, r.B.Netem, r.NetemSet = sa, sb, true
				r.Admin = store.AdminUp
				if down {
					r.Admin = store.AdminDown
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: last record admin %q, a %v, b %v", id, last.Admin, last.A.Netem, last.B.Netem)
		for _, p := range []*testcluster.Pod{a, b} {
			mine, _ := last.EndsOf(p.Name)
			var want impair.Applied
			if mine.Netem != nil {
				want, err = impair.Plan(*mine.Netem, caps)
				if err != nil {
					t.Fatal(err)
				}
			}
			var diff []string
			ok := testcluster.WaitFor(7*time.Second, func() bool {
				got, err := impair.Inspect(context.Background(), p.Netns, ifname)
				if err != nil {
					diff = []string{err.Error()}
					return false
				}
				diff = impair.Diff(want, got)
				info, _ := wiring.Lookup(context.Background(), p.Netns, ifname)
				if info.AdminUp == last.IsDown() {
					diff = append(diff, "admin "+upDown(info.AdminUp))
				}
				return len(diff) == 0
			})
			if !ok {
				t.Errorf("%s end of %s after 40 fast changes: kernel differs from the last record: %v", p.Name, id, diff)
			}
		}
		r, _, _ := store.GetLink(context.Background(), c.KV, c.Keys, "default", id)
		t.Logf("applied: a %q, b %q", r.A.Applied, r.B.Applied)
	}
	for _, p := range []*testcluster.Pod{xa, xb, sa, sb} {
		p.MustDel()
	}
	c.AssertNothingLeft()
}

// an IPv6 link keeps its addresses through `link down`/`up` and
// through parking (Linux flushes IPv6 addresses of an interface set admin
// down unless keep_addr_on_down is set): issue 14 "keeps its interface
// (name, addresses, MTU)".
func TestIPv6AddressesKeptThroughDownUpAndParking(t *testing.T) {
	c := testcluster.New(t, "v3", 2)
	xa, xb, sa, sb := twoPairs(c, [4]string{"2001:db8:14::1/64", "2001:db8:14::2/64", "2001:db8:15::1/64", "2001:db8:15::2/64"})
	for _, tc := range []struct {
		a, b     *testcluster.Pod
		ifname   string
		aIP, bIP string
		id       string
	}{
		{xa, xb, "x1", "2001:db8:14::1", "2001:db8:14::2", store.LinkID("xa", "x1", "xb", "x1")},
		{sa, sb, "s1", "2001:db8:15::1", "2001:db8:15::2", store.LinkID("sa", "s1", "sb", "s1")},
	} {
		if !testcluster.WaitFor(5*time.Second, func() bool { return tc.a.Ping(tc.bIP) == nil }) {
			o1, _ := tc.a.Exec("ip", "addr", "show", "dev", tc.ifname)
			o2, _ := tc.a.Exec("ping", "-c", "2", "-W", "1", tc.bIP)
			o3, _ := tc.b.Exec("ip", "addr", "show", "dev", tc.ifname)
			t.Errorf("%s: no ping right after ADD\n%s\n%s\n%s\n%s", tc.id, o1, o2, o3, grepLog(tc.a.H, tc.ifname))
			continue
		}
		setLink(t, c, tc.id, func(r *store.LinkRecord) { r.Admin = store.AdminDown })
		time.Sleep(time.Second)
		for _, p := range []*testcluster.Pod{tc.a, tc.b} {
			ip := tc.aIP
			if p == tc.b {
				ip = tc.bIP
			}
			if !p.HasLink(tc.ifname, ip) {
				out, _ := p.Exec("ip", "addr", "show", "dev", tc.ifname)
				t.Errorf("%s: link down: %s lost its address %s:\n%s", tc.id, p.Name, ip, out)
			}
		}
		setLink(t, c, tc.id, func(r *store.LinkRecord) { r.Admin = store.AdminUp })
		if !testcluster.WaitFor(5*time.Second, func() bool { return tc.a.Ping(tc.bIP) == nil }) {
			out, _ := tc.a.Exec("ip", "addr", "show", "dev", tc.ifname)
			t.Errorf("%s: link up again: no ping over IPv6\n%s", tc.id, out)
		}
	}
	// Parking: xb goes, xa's vxlan end is parked (down); xb back.
	xb.MustDel()
	time.Sleep(time.Second)
	if !xa.HasLink("x1", "2001:db8:14::1") {
		out, _ := xa.Exec("ip", "addr", "show", "dev", "x1")
		t.Errorf("parked vxlan end lost its IPv6 address:\n%s", out)
	}
	xb2 := c.Hosts[1].NewPod("xb")
	xb2.MustAdd()
	if !testcluster.WaitFor(5*time.Second, func() bool { return xa.Ping("2001:db8:14::2") == nil }) {
		out, _ := xa.Exec("ip", "addr", "show", "dev", "x1")
		t.Errorf("peer back: no ping over IPv6\n%s", out)
	}
	for _, p := range []*testcluster.Pod{xa, xb2, sa, sb} {
		p.MustDel()
	}
	c.AssertNothingLeft()
}

// grepLog is the lines of the host's log that name ifname's end state.
func grepLog(h *testcluster.Host, ifname string) string {
	data, _ := os.ReadFile(filepath.Join(h.Dir, "ratchet.log"))
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, `"endIfname":"`+ifname+`"`) && (strings.Contains(l, "down") || strings.Contains(l, "park")) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
