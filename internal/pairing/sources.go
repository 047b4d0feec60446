package pairing

import (
	"context"
	"errors"
	"fmt"
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
