package metadata

import (
	"context"
	"errors"
	"fmt"
)

// Query identifies the pod whose metadata a Source is asked for: the
// sandbox's container ID (CNI_CONTAINERID) and, when the runtime passed them,
// the pod's namespace and name (K8S_POD_NAMESPACE, K8S_POD_NAME).
type Query struct {
	ContainerID  string
	PodNamespace string
	PodName      string
	// Annotations are the pod's annotations when the runtime passed them
	// with the call (containerd's io.kubernetes.cri.pod-annotations); nil
	// when it did not.
	Annotations map[string]string
}

// Source is a place that may hold a pod's ratchet metadata: the sandbox's
// Docker labels, or the record that announcer wrote in etcd.
type Source interface {
	// Name says which source this is ("docker", "etcd"), for logs and errors.
	Name() string
	// Labels returns the pod's metadata as label keys and values. It
	// returns an error matching ErrNoMetadata when the source holds nothing
	// for the pod, and one matching ErrSourceUnavailable when the source
	// cannot be asked. It waits no longer than ctx allows.
	Labels(ctx context.Context, q Query) (map[string]string, error)
}

// Lookup asks the sources in order and returns the pod described by the
// first one whose labels make a ratchet pod and describe its links, with
// that source's name. A source whose labels only mark the pod (ratchet=true
// and nothing about links: see Pod.Describes) makes it a ratchet pod and
// lets a later source describe it; when none does, the first marking
// source's pod is returned (a ratchet pod whose links come later).
//
// A source with nothing (ErrNoMetadata), or whose labels do not make a
// ratchet pod, is passed over. So is an unavailable source, but when no later
// source has the pod, Lookup returns the unavailable sources' errors (match
// ErrSourceUnavailable): the pod might be a ratchet pod. Any other error of a
// source, and invalid metadata (*Error), ends the lookup with that source's
// name. Lookup returns nil, "", nil when no source knows the pod as a ratchet
// pod.
//
// When q has no pod name, the ratchet.pod_name and ratchet.namespace labels
// of a source that is passed over fill it in for the sources after it (a
// container labelled only with its pod name points to the announced record).
func Lookup(ctx context.Context, sources []Source, q Query, reserved ...string) (*Pod, string, error) {
	var unavailable []error
	var marked *Pod
	var markedBy string
	for _, s := range sources {
		labels, err := s.Labels(ctx, q)
		switch {
		case errors.Is(err, ErrNoMetadata):
			continue
		case errors.Is(err, ErrSourceUnavailable):
			unavailable = append(unavailable, fmt.Errorf("metadata source %s: %w", s.Name(), err))
			continue
		case err != nil:
			return nil, s.Name(), fmt.Errorf("metadata source %s: %w", s.Name(), err)
		}
		pod, err := Parse(labels, reserved...)
		if err != nil {
			return nil, s.Name(), fmt.Errorf("metadata from %s: %w", s.Name(), err)
		}
		if pod != nil && pod.Describes() {
			return pod, s.Name(), nil
		}
		if pod != nil && marked == nil {
			marked, markedBy = pod, s.Name()
		}
		if q.PodName == "" && labels[KeyPodName] != "" {
			q.PodName = labels[KeyPodName]
			if q.PodNamespace == "" {
				q.PodNamespace = labels[KeyNamespace]
			}
		}
	}
	if marked != nil {
		return marked, markedBy, nil
	}
	if len(unavailable) > 0 {
		return nil, "", errors.Join(unavailable...)
	}
	return nil, "", nil
}
