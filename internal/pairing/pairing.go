// Package pairing wires a ratchet pod's links to its peer pods after
// delegation: it records the pod in etcd, builds same-host veth pairs and
// cross-host vxlan ends with the wiring package, and undoes it all at DEL.
// It runs in the node agent, whose reconcile loop (Follow) wires the links
// whose peers come later. Every decision
// two pods could race on is taken with a compare-and-swap in the store.
package pairing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// VNIMin is the first VNI ratchet allocates; store.MaxVNI the last.
const VNIMin uint32 = 4096

// Errors callers branch on (the command layer gives them their CNI codes).
var (
	// ErrBadConfig: the netconf cannot work on this host (etcd settings the
	// client refuses, no underlay address).
	ErrBadConfig = errors.New("invalid configuration")
	// ErrConflict: a pod's links contradict another pod's, or want an
	// interface another link or plugin holds.
	ErrConflict = errors.New("conflicting link")
)

// Request is one CNI invocation as pairing sees it.
type Request struct {
	ContainerID string
	NetNS       string
	// IfName is the runtime's CNI_IFNAME, the master delegate's interface.
	IfName string
	// Args is CNI_ARGS.
	Args string
	// Reserved are the interface names the delegates use in the pod
	// (CNI_IFNAME, net1, …): no link may take them.
	Reserved []string
	// Annotations are the pod's annotations the runtime passed in
	// runtimeConfig (io.kubernetes.cri.pod-annotations); nil when none.
	Annotations map[string]string
}

// Deps are the Manager's collaborators; a nil field means the real one.
type Deps struct {
	// Store is the state; nil connects to the netconf's etcd on first use.
	Store store.Store
	// Wirer builds and removes interfaces; nil is the kernel (netlink).
	Wirer Wirer
	// Sources are the metadata sources; nil builds the netconf's list.
	Sources []metadata.Source
	// Observer hears what the agent's metrics count; nil hears nothing.
	Observer Observer
	// Kube is the agent's watch of its node's pods in Kubernetes; nil
	// when the agent has no Kubernetes API (the kubernetes source then
	// reads only the annotations a call carries, and no Events are made).
	Kube KubePods
}

// Manager pairs the pods of one configuration in the agent. Its methods
// may run concurrently: the work on one pod is serialized by a pod lock.
type Manager struct {
	conf *config.NetConf
	log  *slog.Logger
	keys store.Keys
	kv   store.Store
	// ownStore: kv was opened here (not given in Deps) and Close closes it.
	ownStore bool
	wire     Wirer
	sources  []metadata.Source
	locks    *podLocks
	// cache is the watched copy of the records that the Follower keeps.
	cache *cache
	// ends remembers the state last put on each link end (see endstate.go).
	ends *endStates
	obs  Observer
	// kube is the agent's watch of its node's pods; nil without one.
	kube KubePods
	// invalid: container ID → the error of its invalid declaration last
	// reported (see redeclare).
	invalid *sync.Map
}

// New returns a Manager for conf. It connects to etcd only when a pod turns
// out to be a ratchet pod, so that other pods never touch etcd.
func New(conf *config.NetConf, log *slog.Logger, deps Deps) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{conf: conf, log: log, keys: store.Keys{Prefix: conf.Etcd.Prefix},
		kv: deps.Store, wire: cmp.Or[Wirer](deps.Wirer, &kernel{}), sources: deps.Sources, locks: &podLocks{}, cache: newCache(), ends: newEndStates(),
		obs: cmp.Or[Observer](deps.Observer, nopObserver{}), kube: deps.Kube, invalid: &sync.Map{}}
	if m.sources == nil {
		m.sources = m.defaultSources()
	}
	return m
}

// WithLog returns a Manager that shares everything with m but logs to log
// (one request's fields).
func (m *Manager) WithLog(log *slog.Logger) *Manager {
	c := *m
	c.log = log
	return &c
}

// podLocks serializes the work on each pod (an ADD, a DEL and the
// reconcile loop).
type podLocks struct{ m sync.Map }

// podMutex is the lock of pod ns/name.
func (m *Manager) podMutex(ns, name string) *sync.Mutex {
	mu, _ := m.locks.m.LoadOrStore(podKey(ns, name), &sync.Mutex{})
	return mu.(*sync.Mutex)
}

// tryLockPod takes the lock of pod ns/name if it is free.
func (m *Manager) tryLockPod(ns, name string) (func(), bool) {
	mu := m.podMutex(ns, name)
	if !mu.TryLock() {
		return nil, false
	}
	return mu.Unlock, true
}

// lockPod takes the lock of pod ns/name and returns its release.
func (m *Manager) lockPod(ns, name string) func() {
	mu := m.podMutex(ns, name)
	mu.Lock()
	return mu.Unlock
}

// store connects on first use.
func (m *Manager) store() (store.Store, error) {
	if m.kv != nil {
		return m.kv, nil
	}
	kv, err := store.New(m.conf.Etcd.StoreConfig())
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return nil, fmt.Errorf("etcd: %w", err)
		}
		return nil, fmt.Errorf("etcd: %w: %w", ErrBadConfig, err)
	}
	m.kv, m.ownStore = kv, true
	return kv, nil
}

// Close releases the store connection it opened and the metadata sources.
func (m *Manager) Close() error {
	var errs []error
	if m.kv != nil && m.ownStore {
		errs = append(errs, m.kv.Close())
	}
	for _, s := range m.sources {
		if c, ok := s.(interface{ Close() error }); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// podKey names a pod in messages: namespace/name.
func podKey(ns, name string) string { return ns + "/" + name }

// k8sArgs reads K8S_POD_NAMESPACE and K8S_POD_NAME from CNI_ARGS.
func k8sArgs(args string) (namespace, name string) {
	for _, kv := range strings.Split(args, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "K8S_POD_NAMESPACE":
			namespace = v
		case "K8S_POD_NAME":
			name = v
		}
	}
	return namespace, name
}

// opContext bounds one pairing step: the etcd timeout for each request is
// the store's; the whole step gets a few of them plus wiring time.
func (m *Manager) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 10*m.conf.Etcd.Timeout.D()+30*time.Second)
}
