package testenv

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestNewNSHasLoopbackOnly(t *testing.T) {
	n := NewNS(t)
	if links := n.Links(t); len(links) != 0 {
		t.Fatalf("new netns %s has links %v", n.Name, links)
	}
	if err := n.Ping("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
}

func TestEtcdRestartKeepsServing(t *testing.T) {
	RequireRoot(t)
	e := StartEtcd(t)
	e.Restart()
	if e.srv == nil {
		t.Fatal("etcd not running after restart")
	}
}

func TestBinDirBuildsReferencePlugins(t *testing.T) {
	dir := BinDir(t, ReferencePlugins...)
	for _, name := range []string{"bridge", "host-local", "loopback", "ptp"} {
		if _, err := os.Stat(dir + "/" + name); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseIPLinksSkipsLoAndWarningsAndCutsThePeer(t *testing.T) {
	out := "Warning: Peer netns reference is invalid.\n" +
		"1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue state UNKNOWN\n" +
		"5: in1@if6: <BROADCAST,UP> mtu 1500 qdisc noqueue master br0 state UP\n" +
		"7: eth0: <BROADCAST> mtu 1450\n"
	links := ParseIPLinks(out)
	if len(links) != 2 || links[0].Name != "in1" || links[1].Name != "eth0" {
		t.Fatalf("links %+v, want in1 and eth0", links)
	}
	if links[0].Peer != "if6" || links[1].Peer != "" {
		t.Errorf("peers %q and %q, want if6 and none", links[0].Peer, links[1].Peer)
	}
	if w := links[0].Words; len(w) < 7 || w[5] != "master" || w[6] != "br0" {
		t.Errorf("in1 words %q", w)
	}
}
