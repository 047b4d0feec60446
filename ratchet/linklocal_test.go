package main

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// A pair whose ends have IPv6 link-local addresses is wired, and CHECK
// passes on both pods: it compares what was configured.
func TestLinkLocalPairPassesCheckOnBothPods(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	c.Announce(&metadata.Pod{Name: "ll-a", Primary: true, Links: []metadata.Link{{
		Peer: "ll-b", IfName: "in1", IP: "fe80::a/64", PeerIfName: "in2", PeerIP: "fe80::b/64",
	}}})
	c.Announce(&metadata.Pod{Name: "ll-b", Expects: []metadata.Link{{
		Peer: "ll-a", IfName: "in2", IP: "fe80::b/64", PeerIfName: "in1", PeerIP: "fe80::a/64",
	}}})
	a, b := c.Hosts[0].NewPod("ll-a"), c.Hosts[0].NewPod("ll-b")
	a.MustAdd()
	b.MustAdd()
	if !a.HasLink("in1", "fe80::a/64") || !b.HasLink("in2", "fe80::b/64") {
		t.Fatalf("link-local ends missing:\n%s\n%s", a.MustExec("ip", "-o", "addr"), b.MustExec("ip", "-o", "addr"))
	}
	if err := a.Ping("fe80::b%in1"); err != nil {
		t.Errorf("ping a→b: %v", err)
	}
	for _, p := range []*testcluster.Pod{a, b} {
		if err := p.Check(); err != nil {
			t.Errorf("CHECK %s: %v\n%s", p.Name, err, p.H.LogTail())
		}
	}
	b.MustDel()
	a.MustDel()
	c.AssertNothingLeft()
}
