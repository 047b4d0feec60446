package pairing

import (
	"errors"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// Observer hears the events the agent's metrics count. Its methods must
// not block.
type Observer interface {
	// Repointed: a vxlan end was pointed at its peer's new host.
	Repointed(namespace string)
	// WiringFailed: building a link end failed, for reason (a short
	// class: "conflict", "mtu", "netns_gone", "exists", "other").
	WiringFailed(reason string)
	// Relisted: the agent's watch of etcd broke and it read the records
	// again (etcd restarted, or the agent was cut off from it).
	Relisted()
}

// nopObserver hears nothing.
type nopObserver struct{}

func (nopObserver) Repointed(string)    {}
func (nopObserver) WiringFailed(string) {}
func (nopObserver) Relisted()           {}

// failureReason classifies a build error for WiringFailed.
func failureReason(err error) string {
	switch {
	case errors.Is(err, ErrConflict), errors.Is(err, wiring.ErrNotOwned), errors.Is(err, errPeerSide):
		return "conflict"
	case errors.Is(err, wiring.ErrMTU):
		return "mtu"
	case errors.Is(err, wiring.ErrNetnsGone):
		return "netns_gone"
	case errors.Is(err, wiring.ErrExists):
		return "exists"
	}
	return "other"
}

// LinkSummary is one link as the agent's metrics see it: its namespace,
// state and admin state, and for each end on this host whether its
// impairment is in force.
type LinkSummary struct {
	Namespace string
	State     store.LinkState
	Down      bool
	// Impaired counts this host's ends that carry an impairment;
	// NotApplied those of them with something not applied.
	Impaired, NotApplied int
}

// Links summarises the links with an end on this host's pods, from the
// agent's watched copy (nil while it is not live).
func (m *Manager) Links() []LinkSummary {
	return m.cache.summary(m.conf.Host.Name)
}
