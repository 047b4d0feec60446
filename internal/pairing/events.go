package pairing

import (
	"fmt"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// Reasons of the Kubernetes Events the agent records on a pod (shown by
// kubectl describe pod).
const (
	// ReasonLinkWired: one of the pod's links is wired (Normal).
	ReasonLinkWired = "LinkWired"
	// ReasonLinkFailed: one of the pod's links failed; the message has the
	// reason (Warning).
	ReasonLinkFailed = "LinkFailed"
	// ReasonLinkRemoved: a link of the pod no declaration has any more was
	// removed (Normal).
	ReasonLinkRemoved = "LinkRemoved"
	// ReasonInvalidLinks: the pod's changed declaration is invalid; its
	// links stay as they were (Warning).
	ReasonInvalidLinks = "InvalidLinks"
)

// podEvent records an Event on a pod when the agent has a Kubernetes API.
func (m *Manager) podEvent(ns, name, reason, msg string, warn bool) {
	if m.kube != nil {
		m.kube.Event(ns, name, reason, msg, warn)
	}
}

// linkEvents records, on the pods of this host at link rec's ends, the
// Event of the link's new state (reason one of the Reason* constants).
func (m *Manager) linkEvents(ns string, rec *store.LinkRecord, reason string) {
	if m.kube == nil {
		return
	}
	for _, end := range []store.LinkEnd{rec.A, rec.B} {
		p, ok := m.cache.pod(ns, end.Pod)
		if !ok || p.val.Host != m.conf.Host.Name {
			continue
		}
		_, peer := rec.EndsOf(end.Pod)
		what := fmt.Sprintf("link %s (%s to %s/%s)", rec.ID, end.IfName, peer.Pod, peer.IfName)
		switch reason {
		case ReasonLinkWired:
			m.kube.Event(ns, end.Pod, reason, what+" wired", false)
		case ReasonLinkFailed:
			m.kube.Event(ns, end.Pod, reason, what+" failed: "+rec.Reason, true)
		case ReasonLinkRemoved:
			m.kube.Event(ns, end.Pod, reason, what+" removed: no pod declares it any more", false)
		}
	}
}

// hasLocalEnd reports whether one of rec's ends is a pod of this host.
func (m *Manager) hasLocalEnd(ns string, rec *store.LinkRecord) bool {
	for _, end := range []store.LinkEnd{rec.A, rec.B} {
		if p, ok := m.cache.pod(ns, end.Pod); ok && p.val.Host == m.conf.Host.Name {
			return true
		}
	}
	return false
}
