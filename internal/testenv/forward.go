package testenv

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/nsproxy"
)

// Forwarder relays connections from a loopback address inside a netns to
// a target in the test process's netns (see nsproxy).
type Forwarder = nsproxy.Proxy

// Forward makes target (a host:port in the test process's own netns, such
// as the embedded etcd) reachable from inside n at the returned forwarder's
// loopback Addr. Traffic stays on loopback. It stops when the test ends.
func (n *NS) Forward(t testing.TB, target string) *Forwarder {
	t.Helper()
	p, err := nsproxy.Start(n.Path(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
