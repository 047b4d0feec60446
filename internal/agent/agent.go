// Package agent is the node agent ratchetd: it serves the thin plugin on a
// unix socket (HTTP + JSON, see agentapi), holds one etcd connection, one
// watch and the metadata sources per configuration, runs the reconcile loop
// that wires links whose peers come later, and announces itself in etcd.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/metrics"
)

// Options configure an agent.
type Options struct {
	// Socket is the unix socket to serve on (made 0600, in a 0700 dir).
	Socket string
	// Netconf is a netconf file whose configuration the agent starts with
	// (its reconcile loop runs at once); empty: the first request's.
	Netconf string
	// Host overrides the netconfs' host.name.
	Host string
	// OnDemand: exit once the host has no ratchet pods and no requests
	// came for IdleGrace.
	OnDemand  bool
	IdleGrace time.Duration
	// Version is announced in etcd and answered to STATUS.
	Version string
	Log     *slog.Logger
	// MetricsAddress is the TCP host:port of /metrics and /healthz; empty
	// serves neither. One that cannot be bound is logged, not fatal.
	MetricsAddress string
	// MetricsBound, if set, is given the address metrics listen on (port
	// 0 picks one).
	MetricsBound func(net.Addr)
}

// Agent is a running node agent.
type Agent struct {
	opts     Options
	log      *slog.Logger
	pairers  *pairers
	metrics  *metrics.Metrics
	started  time.Time
	inflight atomic.Int64
	lastReq  atomic.Int64 // unix nanoseconds
	ctx      context.Context
	stop     context.CancelFunc // ends Run
	wg       sync.WaitGroup
}

// Run serves until ctx ends (or, on demand, until the host is idle or a
// resident agent takes the socket over), then stops the loops, closes the
// connections and removes the socket.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.IdleGrace == 0 {
		o.IdleGrace = 5 * time.Second
	}
	if err := checkMetricsAddress(o.MetricsAddress); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := &Agent{opts: o, log: o.Log, started: time.Now(), ctx: ctx, stop: cancel}
	a.lastReq.Store(time.Now().UnixNano())
	ln, release, err := a.claimSocket(ctx)
	if err != nil {
		return err
	}
	defer release() // last: the next agent starts once everything has stopped
	a.metrics = metrics.New(a.links)
	a.pairers = &pairers{byID: map[[32]byte]*pairer{}, log: o.Log, host: o.Host, run: a.runPairer, obs: a.metrics,
		kube: newKubeWatches(ctx, o.Log)}
	defer a.pairers.close()
	if o.Netconf != "" {
		if err := a.startConfig(o.Netconf); err != nil {
			unlinkSocket(ln, o.Socket)
			ln.Close()
			return err
		}
	}
	srv := &http.Server{Handler: a.mux(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer a.startMetrics()()
	if o.OnDemand {
		go a.exitWhenIdle(ctx, cancel)
	}
	a.log.Info("agent listening", "socket", o.Socket, "onDemand", o.OnDemand, "version", o.Version)
	<-ctx.Done()
	a.log.Info("agent stopping")
	stopListening(ln, o.Socket)
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWait)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Warn("requests still running at exit", "err", err)
	}
	return nil
}

func (a *Agent) startConfig(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read netconf: %w", err)
	}
	if _, _, err := a.pairers.get(data); err != nil {
		return fmt.Errorf("netconf %s: %w", path, err)
	}
	return nil
}

// runPairer starts a new pairer's reconcile loop and registration.
func (a *Agent) runPairer(p *pairer) {
	ctx, stop := context.WithCancel(a.ctx)
	p.stop = stop
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); a.register(ctx, p) }()
		_ = p.follower.Run(ctx)
		wg.Wait()
	}()
}

// listen opens the socket: 0600 in a 0700 directory. A socket file nobody
// listens on (a killed agent's) is replaced; one with a live agent is an
// error.
func listen(socket string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent listens on %s", socket)
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	// stopListening unlinks the socket, and only while it is still this
	// one: never another agent's.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(socket, 0o600); err != nil {
		ln.Close()
		os.Remove(socket)
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	st, err := os.Stat(socket)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket: %w", err)
	}
	return &listener{UnixListener: ln, file: st}, nil
}

// listener is the agent's socket and the file it made.
type listener struct {
	*net.UnixListener
	file os.FileInfo
}

// drainWait is how long a stopping agent still accepts the connections
// that reached its socket before it was unlinked.
const drainWait = 200 * time.Millisecond

// stopListening unlinks the socket file, if it is still this agent's, so
// that plugins connecting from now on find no agent (and wait for, or
// start, the next one) instead of a connection reset; then it still
// accepts, for drainWait, the connections that reached the listener's
// backlog before, which Shutdown then serves to the end.
func stopListening(ln net.Listener, socket string) {
	unlinkSocket(ln, socket)
	time.Sleep(drainWait)
}

// unlinkSocket removes the socket file if it is still the one ln made.
func unlinkSocket(ln net.Listener, socket string) {
	if l, ok := ln.(*listener); ok {
		if st, err := os.Stat(socket); err == nil && os.SameFile(st, l.file) {
			_ = os.Remove(socket)
		}
	}
}

// exitWhenIdle ends an on-demand agent once no request came for IdleGrace
// and no pairer has pods, pending links or pairing state on this host.
func (a *Agent) exitWhenIdle(ctx context.Context, cancel context.CancelFunc) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		quiet := time.Since(time.Unix(0, a.lastReq.Load())) > a.opts.IdleGrace
		if a.inflight.Load() == 0 && quiet && a.hostIdle() {
			a.log.Info("on-demand agent: no ratchet pods on this host; exiting")
			cancel()
			return
		}
	}
}

// hostIdle reports whether no pairer has pods, pending links or pairing
// state files on this host.
func (a *Agent) hostIdle() bool {
	for _, p := range a.pairers.all() {
		if st := p.follower.Stats(); st.Pods > 0 || st.Pending > 0 {
			return false
		}
		if entries, _ := os.ReadDir(agentapi.StateDir(p.conf.CNIDir)); len(entries) > 0 {
			return false
		}
	}
	return true
}
