package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/pairing"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// pairer is the pairing of one configuration (etcd, host, sources): one
// store connection, one Manager and one reconcile loop, shared by every
// request whose netconf has that configuration.
type pairer struct {
	conf     *config.NetConf
	kv       store.Store
	m        *pairing.Manager
	follower *pairing.Follower
	stop     context.CancelFunc
	done     chan struct{}
}

// pairers holds the agent's pairers by configuration.
type pairers struct {
	mu   sync.Mutex
	byID map[[32]byte]*pairer
	log  *slog.Logger
	host string
	run  func(*pairer) // starts a new pairer's loops
	obs  pairing.Observer
	kube *kubeWatches // the watches of the node's pods, by kubeconfig
}

// identity is what makes two netconfs share a pairer: everything pairing
// reads, not the delegates or the log settings.
func identity(c *config.NetConf) [32]byte {
	b, _ := json.Marshal([]any{c.Etcd, c.Metadata, c.Docker, c.Kubernetes, c.Host, c.CNIDir, c.PairTimeout, c.Vxlan})
	return sha256.Sum256(b)
}

// get returns the pairer of a netconf, building it on first use, and the
// netconf as loaded.
func (ps *pairers) get(raw []byte) (*pairer, *config.NetConf, error) {
	conf, err := config.Load(raw)
	if err != nil {
		return nil, nil, err
	}
	if ps.host != "" {
		conf.Host.Name = ps.host
	}
	id := identity(conf)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.byID[id]; ok {
		return p, conf, nil
	}
	kv, err := store.New(conf.Etcd.StoreConfig())
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return nil, nil, fmt.Errorf("etcd: %w", err)
		}
		return nil, nil, fmt.Errorf("etcd: %w: %w", pairing.ErrBadConfig, err)
	}
	log := ps.log.With("etcdPrefix", conf.Etcd.Prefix)
	p := &pairer{conf: conf, kv: kv, m: pairing.New(conf, log, pairing.Deps{Store: kv, Observer: ps.obs, Kube: ps.kube.get(conf)}), done: make(chan struct{})}
	p.follower = p.m.NewFollower()
	ps.byID[id] = p
	ps.run(p)
	return p, conf, nil
}

// all lists the pairers.
func (ps *pairers) all() []*pairer {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]*pairer, 0, len(ps.byID))
	for _, p := range ps.byID {
		out = append(out, p)
	}
	return out
}

// close stops every pairer's loops and closes its store and sources, then
// the watches of the node's pods they shared.
func (ps *pairers) close() {
	for _, p := range ps.all() {
		if p.stop != nil {
			p.stop()
			<-p.done
		}
		_ = p.m.Close()
	}
	ps.kube.close()
}
