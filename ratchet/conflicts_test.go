package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// These tests are black-box: they announce pods, run the plugin through
// libcni and look at the netns and the records, so that each one also ran
// (and failed) against the plugin before links owned their interfaces.

// withPTP gives a pod the netconf of its host with a second delegate, ptp
// on net1.
func withPTP(t *testing.T, c *testcluster.Cluster, p *testcluster.Pod) {
	conf := p.H.Netconf(func(m map[string]any) {
		m["delegates"] = append(m["delegates"].([]any), map[string]any{
			"type": "ptp", "ipam": map[string]any{"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": p.H.Dir + "/ipam-ptp"},
		})
	})
	p.Conf = c.CNI.Conf(t, conf)
}

func link(peer, ifname, peerIfname string) metadata.Link {
	return metadata.Link{Peer: peer, IfName: ifname, PeerIfName: peerIfname}
}

func hasLink(p *testcluster.Pod, name string) bool { return slices.Contains(p.Links(), name) }

func TestLinkNeverDeletesAnInterfaceItDoesNotOwnE2E(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	c.Announce(&metadata.Pod{Name: "holder"})
	c.Announce(&metadata.Pod{Name: "greedy", Primary: true, Links: []metadata.Link{link("holder", "g1", "net1")}})
	c.Announce(&metadata.Pod{Name: "other", Primary: true, Links: []metadata.Link{link("holder", "o1", "x9")}})
	holder, greedy, other := c.Hosts[0].NewPod("holder"), c.Hosts[0].NewPod("greedy"), c.Hosts[0].NewPod("other")
	for _, p := range []*testcluster.Pod{holder, greedy, other} {
		withPTP(t, c, p)
	}
	holder.MustAdd()
	holder.MustExec("ip", "link", "add", "x9", "type", "bridge") // the pod's own interface
	if !hasLink(holder, "net1") {
		t.Fatalf("holder has %v, want the second delegate's net1", holder.Links())
	}
	// A link onto the peer's delegate interface is refused at validation.
	err := greedy.Add()
	if err == nil || cniCode(t, err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), `_ifname: "net1"`) {
		t.Fatalf("ADD of a link onto net1 = %v, want code 7 naming the key of net1", err)
	}
	// A link onto an interface the pod made itself: wired by nobody.
	other.MustAdd()
	if !hasLink(holder, "net1") || !hasLink(holder, "x9") {
		t.Fatalf("holder has %v after the others' ADDs: its net1 and x9 must stay", holder.Links())
	}
	if rec := c.Link("holder", "x9", "other", "o1"); rec.State != store.LinkFailed || !strings.Contains(rec.Reason, "did not create") {
		t.Errorf("link onto x9 is %q (%s), want failed naming the holder", rec.State, rec.Reason)
	}
	other.MustDel()
	holder.MustDel()
	if err := holder.Check(); err == nil {
		t.Log("CHECK after DEL passed (no cache)")
	}
}

func TestAnInterfaceEndBelongsToOneLinkE2E(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	c.Announce(&metadata.Pod{Name: "p"})
	for _, n := range []string{"x", "y", "z"} {
		c.Announce(&metadata.Pod{Name: n, Primary: true, Links: []metadata.Link{link("p", "to-p", "in1")}})
	}
	p, x := c.Hosts[0].NewPod("p"), c.Hosts[0].NewPod("x")
	p.MustAdd()
	x.MustAdd()
	for _, n := range []string{"y", "z"} {
		err := c.Hosts[0].NewPod(n).Add()
		if err == nil || cniCode(t, err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), store.LinkID("x", "to-p", "p", "in1")) {
			t.Fatalf("ADD %s = %v, want code 7 naming x's link\n%s", n, err, c.Hosts[0].LogTail())
		}
	}
	if rec := c.Link("p", "in1", "x", "to-p"); rec.State != store.LinkWired {
		t.Fatalf("x's link is %q (%s), want wired", rec.State, rec.Reason)
	}
	if err := p.Check(); err != nil {
		t.Errorf("CHECK of p: %v", err)
	}
	if err := x.Ping("192.0.2.1"); err == nil {
		t.Log("no address on the link, ping not expected")
	}
	x.MustDel()
	p.MustDel()
	c.AssertNothingLeft()
}

func TestSameLinkDeclaredTwiceDifferentlyIsAConflictE2E(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	c.Announce(&metadata.Pod{Name: "a", Primary: true, Links: []metadata.Link{{Peer: "b", IfName: "in1", IP: "198.51.100.1/24", PeerIfName: "in2", PeerIP: "198.51.100.2/24"}}})
	c.Announce(&metadata.Pod{Name: "b", Primary: true, Links: []metadata.Link{{Peer: "a", IfName: "in2", IP: "198.51.100.6/24", PeerIfName: "in1", PeerIP: "198.51.100.5/24"}}})
	a, b := c.Hosts[0].NewPod("a"), c.Hosts[0].NewPod("b")
	a.MustAdd()
	err := b.Add()
	if err == nil || cniCode(t, err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "pods a and b") {
		t.Fatalf("second declarer's ADD = %v, want code 7 naming both declarers", err)
	}
	if rec := c.Link("a", "in1", "b", "in2"); rec.Declarer != "a" || rec.A.IP != "198.51.100.1/24" {
		t.Errorf("the first declaration changed: %+v", rec)
	}
	a.MustDel()
	c.AssertNothingLeft()
}

func TestLinkOfAnEarlierIncarnationIsNotWiredAgainE2E(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	c.Announce(&metadata.Pod{Name: "a", Primary: true, Links: []metadata.Link{link("b", "old1", "x1")}})
	c.Announce(&metadata.Pod{Name: "b"})
	a, b := c.Hosts[0].NewPod("a"), c.Hosts[0].NewPod("b")
	a.MustAdd()
	b.MustAdd()
	if !hasLink(a, "old1") {
		t.Fatalf("a has %v, want old1", a.Links())
	}
	a.MustDel()
	c.Announce(&metadata.Pod{Name: "a", Primary: true, Links: []metadata.Link{link("b", "new1", "x2")}})
	a2 := c.Hosts[0].NewPod("a")
	a2.MustAdd()
	if hasLink(a2, "old1") || hasLink(b, "x1") {
		t.Fatalf("the earlier incarnation's link came back: a %v, b %v", a2.Links(), b.Links())
	}
	if !hasLink(a2, "new1") || !hasLink(b, "x2") {
		t.Fatalf("new link missing: a %v, b %v", a2.Links(), b.Links())
	}
	a2.MustDel()
	b.MustDel()
	c.AssertNothingLeft()
}
