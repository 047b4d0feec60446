// Package nsproxy makes a TCP service of the caller's network namespace
// reachable from inside another one: it listens on loopback inside the
// target netns and relays each connection to the service. ratchet's tests
// and demo use it to let plugins running in simulated hosts reach etcd.
package nsproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Proxy relays connections from a loopback address inside a netns to a
// target in the caller's netns.
type Proxy struct {
	// Addr is the listening host:port inside the netns.
	Addr string
	// Conns counts the connections accepted so far.
	Conns atomic.Int64

	l      net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

// Start listens on 127.0.0.1 (a free port) inside the netns at nsPath and
// relays every connection to target.
func Start(nsPath, target string) (*Proxy, error) {
	var l net.Listener
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen in netns %s: %w", nsPath, err)
	}
	return serve(l, target), nil
}

// Listen listens on addr in the caller's netns and relays every connection
// to target: a relay that Close cuts, with its clients, at once.
func Listen(addr, target string) (*Proxy, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay on %s: %w", addr, err)
	}
	return serve(l, target), nil
}

func serve(l net.Listener, target string) *Proxy {
	p := &Proxy{l: l, Addr: l.Addr().String(), conns: map[net.Conn]bool{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.accept(target)
	return p
}

func (p *Proxy) accept(target string) {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.Conns.Add(1)
		p.wg.Add(1)
		p.track(c, true)
		go func() {
			defer p.wg.Done()
			defer p.track(c, false)
			relay(p.ctx, c, target, p.track)
		}()
	}
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

// relay copies between c and a new connection to target until either side
// closes; track is told of both connections while they are open, so that
// they can be cut.
func relay(ctx context.Context, c net.Conn, target string, track func(net.Conn, bool)) {
	defer c.Close()
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	if track != nil {
		track(c, true)
		track(up, true)
		defer track(c, false)
		defer track(up, false)
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); up.Close(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

// Close stops listening, cuts the open connections and waits for the relays.
func (p *Proxy) Close() {
	p.cancel()
	p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
