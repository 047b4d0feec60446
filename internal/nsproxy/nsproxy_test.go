package nsproxy_test

import (
	"bufio"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/nsproxy"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// echoServer echoes every line back on 127.0.0.1 until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

// roundTrip sends a line on c and reads it back.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo = %q, %v; want %q", got, err, line)
	}
}

func startProxy(t *testing.T, nsPath, target string) *nsproxy.Proxy {
	t.Helper()
	p, err := nsproxy.Start(nsPath, target)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return p
}

func TestProxyRelaysAndCountsConnections(t *testing.T) {
	testenv.RequireRoot(t)
	p := startProxy(t, "/proc/self/ns/net", echoServer(t))
	t.Cleanup(p.Close)
	for i := range 3 {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatalf("dial proxy %s: %v", p.Addr, err)
		}
		r := bufio.NewReader(c)
		roundTrip(t, c, r, "hello")
		roundTrip(t, c, r, "again")
		c.Close()
		if got := p.Conns.Load(); got != int64(i+1) {
			t.Errorf("Conns = %d after %d connections", got, i+1)
		}
	}
}

func TestCloseCutsOpenConnectionsAndReturns(t *testing.T) {
	testenv.RequireRoot(t)
	p := startProxy(t, "/proc/self/ns/net", echoServer(t))
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, bufio.NewReader(c), "open") // the relay is tracking it now
		conns = append(conns, c)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return with connections open")
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
			t.Errorf("read after Close = %d, %v; want the connection cut", n, err)
		}
	}
	if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		c.Close()
		t.Error("proxy still accepts after Close")
	}
}

func TestProxyListensInsideTheTargetNetns(t *testing.T) {
	n := testenv.NewNS(t)
	p := startProxy(t, n.Path(), echoServer(t))
	t.Cleanup(p.Close)
	var c net.Conn
	err := n.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp", p.Addr, 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s inside the netns: %v", p.Addr, err)
	}
	defer c.Close()
	roundTrip(t, c, bufio.NewReader(c), "from inside")
	if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s answers in the test's own netns: the proxy is not listening inside the target", p.Addr)
	}
}

func TestStartFailsForMissingNetns(t *testing.T) {
	if _, err := nsproxy.Start("/proc/self/ns/no-such-ns", "127.0.0.1:1"); err == nil {
		t.Fatal("Start with a missing netns succeeded")
	}
}
