package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metrics"
	"github.com/ratchet-cni/ratchet/internal/pairing"
)

// etcdPingTimeout bounds /healthz's ping of each configuration's etcd.
const etcdPingTimeout = 2 * time.Second

// checkMetricsAddress refuses a metrics address that is not host:port.
func checkMetricsAddress(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("metrics address %q: not host:port: %w", addr, err)
	}
	return nil
}

// startMetrics serves /metrics and /healthz on Options.MetricsAddress
// (none when empty) and returns what stops the server. An address that
// cannot be bound (in use by another agent, say) is logged and the agent
// goes on without metrics.
func (a *Agent) startMetrics() (stop func()) {
	addr := a.opts.MetricsAddress
	if addr == "" {
		return func() {}
	}
	srv, err := metrics.Listen(addr, a.metrics, a.health)
	if err != nil {
		a.log.Warn("no metrics: cannot listen; the agent goes on without /metrics and /healthz", "address", addr, "err", err)
		return func() {}
	}
	a.log.Info("metrics listening", "address", srv.Addr().String())
	if a.opts.MetricsBound != nil {
		a.opts.MetricsBound(srv.Addr())
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(); err != nil {
			a.log.Warn("metrics server stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			a.log.Warn("metrics server shutdown", "err", err)
		}
		<-done
	}
}

// links sums the link summaries of every configuration the agent serves.
func (a *Agent) links() []pairing.LinkSummary {
	var out []pairing.LinkSummary
	for _, p := range a.pairers.all() {
		out = append(out, p.m.Links()...)
	}
	return out
}

// health is /healthz: the socket accepts connections and every
// configuration's etcd answers a ping within etcdPingTimeout.
func (a *Agent) health(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", a.opts.Socket)
	if err != nil {
		return fmt.Errorf("socket %s: %w", a.opts.Socket, err)
	}
	c.Close()
	ps := a.pairers.all()
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, etcdPingTimeout)
			defer cancel()
			if err := p.m.Status(pctx); err != nil {
				errs[i] = fmt.Errorf("prefix %s: %w", p.conf.Etcd.Prefix, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
