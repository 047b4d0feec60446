// Package pairing wires a ratchet pod's links to its peer pods after
// delegation: it records the pod in etcd, builds same-host veth pairs and
// cross-host vxlan ends with the wiring package, leaves a detached completer
// for peers that are not there yet, and undoes it all at DEL. Every decision
// two pods could race on is taken with a compare-and-swap in the store.
package pairing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// VNI range ratchet allocates vxlan identifiers from.
const (
	VNIMin uint32 = 4096
	VNIMax uint32 = 1<<24 - 1
)

// Request is one CNI invocation as pairing sees it.
type Request struct {
	Conf        *config.NetConf
	ContainerID string
	NetNS       string
	// IfName is the runtime's CNI_IFNAME, the master delegate's interface.
	IfName string
	// Args is CNI_ARGS.
	Args string
	// Netconf is the raw netconf, handed on to a completer.
	Netconf []byte
	// Result is the master delegate's Result (ADD only).
	Result types.Result
}

// Manager pairs the pods of one plugin invocation (or one completer).
type Manager struct {
	conf    *config.NetConf
	log     *slog.Logger
	keys    store.Keys
	kv      store.Store
	sources []metadata.Source
	// prep carries the result of Prepare to Add.
	prep chan prepared
}

// New returns a Manager for conf. It connects to etcd only when a pod turns
// out to be a ratchet pod, so that other pods never touch etcd.
func New(conf *config.NetConf, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{conf: conf, log: log, keys: store.Keys{Prefix: conf.Etcd.Prefix}}
	m.sources = m.defaultSources()
	return m
}

// store connects on first use.
func (m *Manager) store() (store.Store, error) {
	if m.kv != nil {
		return m.kv, nil
	}
	kv, err := store.New(m.conf.Etcd.StoreConfig())
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return nil, fmt.Errorf("etcd: %w", err) // classify: try again later
		}
		return nil, &Error{Code: types.ErrInvalidNetworkConfig, Err: fmt.Errorf("etcd: %w", err)}
	}
	m.kv = kv
	return kv, nil
}

// Close releases the store connection and the metadata sources, after a
// Prepare whose result Add never took has finished.
func (m *Manager) Close() error {
	if m.prep != nil {
		<-m.prep
		m.prep = nil
	}
	var errs []error
	if m.kv != nil {
		errs = append(errs, m.kv.Close())
	}
	for _, s := range m.sources {
		if c, ok := s.(interface{ Close() error }); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Error carries the CNI code of a pairing failure.
type Error struct {
	Code uint
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// CNICode is the CNI error code of the failure.
func (e *Error) CNICode() uint { return e.Code }

// classify gives err its CNI code: etcd or a metadata source unreachable is
// 11 (try again later), invalid metadata 7, the rest keeps or gets 999.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		return err
	}
	var me *metadata.Error
	switch {
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, metadata.ErrSourceUnavailable),
		errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: types.ErrTryAgainLater, Err: err}
	case errors.As(err, &me):
		return &Error{Code: types.ErrInvalidNetworkConfig, Err: err}
	}
	return &Error{Code: types.ErrInternal, Err: err}
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
