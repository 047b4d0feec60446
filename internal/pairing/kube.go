package pairing

import "context"

// KubePods is the agent's watch of the pods of its node in Kubernetes: what
// the kubernetes metadata source reads beyond the annotations a CNI call
// carries, what tells the agent that a pod's declaration changed, and
// where the pods' Events go. internal/kubemeta implements it.
type KubePods interface {
	// Labels returns the ratchet keys ("ratchet" and "ratchet.*") of pod
	// ns/name: its labels, overlaid by its annotations. It answers from
	// the watch; a pod the watch has not seen yet is fetched once, within
	// ctx. A pod that does not exist, or has no ratchet keys: an error
	// matching metadata.ErrNoMetadata; the API not answering: one
	// matching metadata.ErrSourceUnavailable.
	Labels(ctx context.Context, ns, name string) (map[string]string, error)
	// Cached is Labels from the watch alone, without asking the API; ok
	// is false when the watch has not seen the pod (or it is gone).
	Cached(ns, name string) (labels map[string]string, ok bool)
	// Subscribe calls fn(ns, name) after a pod of the node appears, goes,
	// or changes its ratchet labels or annotations. fn must not block.
	// The returned func ends the subscription.
	Subscribe(fn func(ns, name string)) (cancel func())
	// Event records a Kubernetes Event on pod ns/name: type Normal, or
	// Warning when warn. Best effort and asynchronous: it never makes the
	// caller wait on the API.
	Event(ns, name, reason, message string, warn bool)
}
