package pairing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/dockermeta"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// defaultSources builds the metadata sources named in conf.Metadata, in
// order. A docker source that cannot be built is kept as a source that
// reports itself unavailable, so the error surfaces only for ratchet pods.
func (m *Manager) defaultSources() []metadata.Source {
	var out []metadata.Source
	for _, name := range m.conf.Metadata {
		switch name {
		case config.SourceDocker:
			ds, err := dockermeta.New(m.conf.Docker.Host)
			if err != nil {
				out = append(out, brokenSource{name: name, err: metadata.Unavailable("docker at "+m.conf.Docker.Host, err)})
				continue
			}
			out = append(out, ds)
		case config.SourceEtcd:
			out = append(out, &etcdSource{m: m})
		case sourceKubernetes:
			out = append(out, &kubeSource{pods: m.kube})
		}
	}
	return out
}

// etcdSource reads the record announcer wrote for a pod.
type etcdSource struct{ m *Manager }

// Name is "etcd".
func (s *etcdSource) Name() string { return config.SourceEtcd }

// Labels returns the announced labels of the pod named in q: from the
// agent's watched copy while it is live (so that a pod without a record
// never waits for etcd, even when etcd is down), else read from etcd.
func (s *etcdSource) Labels(ctx context.Context, q metadata.Query) (map[string]string, error) {
	if q.PodName == "" {
		return nil, fmt.Errorf("no pod name in CNI_ARGS: %w", metadata.ErrNoMetadata)
	}
	ns := q.PodNamespace
	if ns == "" {
		ns = metadata.DefaultNamespace
	}
	if s.m.cache.isLive() {
		if labels, ok := s.m.cache.announcedLabels(ns, q.PodName); ok {
			return labels, nil
		}
		// Not in the copy: a record written just before this ADD may not
		// have reached it yet. etcd is asked, for at most confirmWait; when
		// it does not answer in time the copy's answer stands, so that a
		// pod without a record never waits longer for etcd.
		return s.confirmAbsent(ctx, ns, q.PodName)
	}
	kv, err := s.m.store()
	if err != nil {
		return nil, err
	}
	labels, _, err := store.GetAnnounce(ctx, kv, s.m.keys, ns, q.PodName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no announced record for %s: %w", podKey(ns, q.PodName), metadata.ErrNoMetadata)
	}
	if errors.Is(err, store.ErrUnavailable) {
		return nil, metadata.Unavailable("etcd", err)
	}
	return labels, err
}

// confirmWait bounds the etcd read that confirms a record the watched copy
// does not have.
const confirmWait = 250 * time.Millisecond

// confirmAbsent reads the announced record of ns/name from etcd, for at
// most confirmWait; absent, or etcd not answering in time: no metadata.
func (s *etcdSource) confirmAbsent(ctx context.Context, ns, name string) (map[string]string, error) {
	none := fmt.Errorf("no announced record for %s: %w", podKey(ns, name), metadata.ErrNoMetadata)
	kv, err := s.m.store()
	if err != nil {
		return nil, none
	}
	cctx, cancel := context.WithTimeout(ctx, confirmWait)
	defer cancel()
	labels, _, err := store.GetAnnounce(cctx, kv, s.m.keys, ns, name)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.m.log.Debug("etcd did not confirm a record the watched copy lacks", "pod", podKey(ns, name), "err", err)
		}
		return nil, none
	}
	return labels, nil
}

// brokenSource stands for a source that could not be set up.
type brokenSource struct {
	name string
	err  error
}

func (b brokenSource) Name() string { return b.name }

func (b brokenSource) Labels(context.Context, metadata.Query) (map[string]string, error) {
	return nil, b.err
}

// sourceKubernetes names the kubernetes metadata source in the netconf's
// "metadata".
const sourceKubernetes = "kubernetes"

// kubeSource reads a Kubernetes pod's ratchet keys: the annotations the
// runtime passed with the call first, then the agent's watch of its node's
// pods (labels, and annotations when the call carried none). Without a
// watch it reads the call's annotations alone.
type kubeSource struct{ pods KubePods }

// Name is "kubernetes".
func (s *kubeSource) Name() string { return sourceKubernetes }

// Labels returns the pod's ratchet keys, its labels overlaid by its
// annotations, with ratchet.pod_name and ratchet.namespace set to the
// pod's own name and namespace.
func (s *kubeSource) Labels(ctx context.Context, q metadata.Query) (map[string]string, error) {
	if q.PodName == "" {
		return nil, fmt.Errorf("no Kubernetes pod name in CNI_ARGS: %w", metadata.ErrNoMetadata)
	}
	ns := cmp.Or(q.PodNamespace, metadata.DefaultNamespace)
	given := ratchetKeys(q.Annotations)
	out := map[string]string{}
	if s.pods != nil {
		watched, err := s.pods.Labels(ctx, ns, q.PodName)
		switch {
		case err == nil:
			maps.Copy(out, watched)
		case errors.Is(err, metadata.ErrNoMetadata):
		case errors.Is(err, metadata.ErrSourceUnavailable) && len(given) > 0:
			// The call's annotations make the pod ratchet's; only its
			// labels are unknown. With none of ratchet's keys there, a
			// label might still mark it: the source is unavailable.
		default:
			return nil, err
		}
	}
	maps.Copy(out, given)
	if len(out) == 0 {
		return nil, fmt.Errorf("pod %s has no ratchet labels or annotations: %w", podKey(ns, q.PodName), metadata.ErrNoMetadata)
	}
	return ownName(out, ns, q.PodName)
}

// ratchetKeys returns the "ratchet" and "ratchet.*" entries of kv.
func ratchetKeys(kv map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range kv {
		if k == metadata.KeyRatchet || strings.HasPrefix(k, metadata.KeyRatchet+".") {
			out[k] = v
		}
	}
	return out
}

// ownName sets a Kubernetes pod's ratchet.pod_name and ratchet.namespace
// to its own; keys naming another pod are an error that names the key.
func ownName(labels map[string]string, ns, name string) (map[string]string, error) {
	for key, want := range map[string]string{metadata.KeyPodName: name, metadata.KeyNamespace: ns} {
		if got, ok := labels[key]; ok && got != want {
			return nil, &metadata.Error{Key: key, Value: got, Reason: "a Kubernetes pod's must be its own, " + strconv.Quote(want)}
		}
		labels[key] = want
	}
	return labels, nil
}
