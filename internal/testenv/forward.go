package testenv

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Forwarder relays connections from a loopback address inside a netns to
// a target in the test process's netns.
type Forwarder struct {
	// Addr is the listening host:port inside the netns.
	Addr string
	// Conns counts the connections accepted so far.
	Conns atomic.Int64
}

// Forward makes target (a host:port in the test process's own netns, such
// as the embedded etcd) reachable from inside n at the returned loopback
// address: the listening socket is created in n, and each connection is
// relayed to target from the test process. Traffic stays on loopback. The
// forwarder stops when the test ends.
func (n *NS) Forward(t testing.TB, target string) *Forwarder {
	t.Helper()
	var l net.Listener
	err := n.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatalf("listen in netns %s: %v", n.Name, err)
	}
	f := &Forwarder{Addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.Conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				relay(c, target, track)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return f
}

// relay copies between c and a new connection to target until either side
// closes.
func relay(c net.Conn, target string, track func(net.Conn, bool)) {
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	track(c, true)
	track(up, true)
	defer track(c, false)
	defer track(up, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); up.Close(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}
