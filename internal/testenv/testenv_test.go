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
