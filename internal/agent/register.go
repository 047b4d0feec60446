package agent

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// registrationTTL is how long an agent's record outlives its last refresh.
const registrationTTL = 30 * time.Second

// register keeps <prefix>/agents/<host> for p's configuration, refreshed
// every third of its TTL, until ctx ends; then it removes it.
func (a *Agent) register(ctx context.Context, p *pairer) {
	keys := store.Keys{Prefix: p.conf.Etcd.Prefix}
	key := keys.Agent(p.conf.Host.Name)
	tick := time.NewTicker(registrationTTL / 3)
	defer tick.Stop()
	for {
		if err := a.announce(ctx, p, key); err != nil && ctx.Err() == nil {
			a.log.Warn("announce agent", "key", key, "err", err)
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = p.kv.Delete(dctx, key, 0)
			cancel()
			return
		case <-tick.C:
		}
	}
}

// announce writes the agent's record with a fresh TTL: the store's Put
// would make it permanent, so an existing record is replaced by delete and
// create.
func (a *Agent) announce(ctx context.Context, p *pairer, key string) error {
	addr, _ := p.m.HostAddress()
	st := p.follower.Stats()
	rec := store.AgentRecord{Host: p.conf.Host.Name, Address: addr, Version: a.opts.Version, Started: a.started.UTC(),
		PID: os.Getpid(), Pods: st.Pods, Links: st.Links, Pending: st.Pending, OnDemand: a.opts.OnDemand}
	_, err := store.CreateJSON(ctx, p.kv, key, rec, registrationTTL)
	if !errors.Is(err, store.ErrExists) {
		return err
	}
	if err := p.kv.Delete(ctx, key, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, err = store.CreateJSON(ctx, p.kv, key, rec, registrationTTL)
	return err
}
