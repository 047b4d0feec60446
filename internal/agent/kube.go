package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/kubemeta"
	"github.com/ratchet-cni/ratchet/internal/pairing"
)

// kubeWatches holds the agent's watches of its node's pods, one per
// kubeconfig path ("" for the in-cluster credentials), each built by the
// first pairer whose netconf lists the kubernetes source and shared by the
// others.
type kubeWatches struct {
	ctx context.Context // the agent's: the watches run until it ends
	log *slog.Logger

	mu sync.Mutex
	// byPath holds the watch of each kubeconfig path; nil for a path
	// without an API (tried once, logged once).
	byPath map[string]*kubemeta.Pods
}

func newKubeWatches(ctx context.Context, log *slog.Logger) *kubeWatches {
	return &kubeWatches{ctx: ctx, log: log, byPath: map[string]*kubemeta.Pods{}}
}

// get returns the watch for conf, starting it on first use; nil when conf
// does not list the kubernetes source or the agent has no API to watch.
func (k *kubeWatches) get(conf *config.NetConf) pairing.KubePods {
	if !slices.Contains(conf.Metadata, config.SourceKubernetes) {
		return nil
	}
	path := conf.Kubernetes.Kubeconfig
	k.mu.Lock()
	defer k.mu.Unlock()
	p, tried := k.byPath[path]
	if !tried {
		p = k.start(path, conf.Host.Name)
		k.byPath[path] = p
	}
	if p == nil {
		return nil // not a typed nil in the interface
	}
	return p
}

// start builds and starts the watch of node's pods through the API that
// kubeconfig names; nil, logged, when there is none.
func (k *kubeWatches) start(kubeconfig, node string) *kubemeta.Pods {
	const noAPI = "no Kubernetes API: the kubernetes source reads only the annotations a CNI call carries"
	cfg, err := kubemeta.Config(kubeconfig)
	var p *kubemeta.Pods
	if err == nil {
		p, err = kubemeta.NewForConfig(cfg, node, k.log)
	}
	switch {
	case errors.Is(err, kubemeta.ErrNoCredentials):
		k.log.Info(noAPI, "reason", err)
		return nil
	case err != nil:
		k.log.Warn(noAPI, "kubeconfig", kubeconfig, "err", err)
		return nil
	}
	p.Start(k.ctx)
	return p
}

// close stops every watch.
func (k *kubeWatches) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for path, p := range k.byPath {
		if p != nil {
			p.Close()
		}
		delete(k.byPath, path)
	}
}
