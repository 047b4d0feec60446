package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// remover removes pods' records with the semantics of the plugin's DEL,
// records only (no netlink, nothing happens in any netns): the pod record,
// and each link of the pod back to pending, or deleted
// with its VNI when the peer has no record either. Every removal is
// printed; with dryRun nothing is written.
type remover struct {
	kv     store.Store
	k      store.Keys
	dryRun bool
	out    io.Writer
}

func (r *remover) say(format string, a ...any) {
	if r.dryRun {
		format = "would " + format
	}
	fmt.Fprintf(r.out, format+"\n", a...)
}

// forgetPod removes the records of pod ns/name. version > 0 removes the pod
// record only while it is at that version (gc: not a newer incarnation).
// withAnnounce also removes the announced record.
func (r *remover) forgetPod(ctx context.Context, ns, name string, version int64, withAnnounce bool) error {
	key := r.k.Pod(ns, name)
	rec, ver, err := store.GetPod(ctx, r.kv, r.k, ns, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read the record of %s/%s: %w", ns, name, err)
	case version > 0 && ver != version:
		r.say("keep %s/%s: its record changed meanwhile (re-created?)", ns, name)
		return nil
	default:
		if err := r.delete(ctx, key, ver); err != nil {
			return fmt.Errorf("delete the record of %s/%s: %w", ns, name, err)
		}
		r.say("delete pod record %s (container %s on %s)", key, shortID(rec.ContainerID), rec.Host)
	}
	if withAnnounce {
		if err := r.deleteIfPresent(ctx, r.k.Announce(ns, name), "announced record"); err != nil {
			return err
		}
	}
	return r.releaseLinks(ctx, ns, name)
}

// delete removes key at version unless this is a dry run.
func (r *remover) delete(ctx context.Context, key string, version int64) error {
	if r.dryRun {
		return nil
	}
	err := r.kv.Delete(ctx, key, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// deleteIfPresent removes key, saying so when it was there.
func (r *remover) deleteIfPresent(ctx context.Context, key, what string) error {
	kv, err := r.kv.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err == nil {
		err = r.delete(ctx, key, kv.Version)
	}
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", what, key, err)
	}
	r.say("delete %s %s", what, key)
	return nil
}

// releaseLinks releases every link with an end on pod.
func (r *remover) releaseLinks(ctx context.Context, ns, pod string) error {
	links, _, err := store.ListLinks(ctx, r.kv, r.k, ns)
	if err != nil {
		return fmt.Errorf("list the links of %s: %w", ns, err)
	}
	var errs []error
	for _, e := range links {
		if e.Value.A.Pod == pod || e.Value.B.Pod == pod {
			if err := r.releaseLink(ctx, ns, e.Value.ID, pod); err != nil {
				errs = append(errs, fmt.Errorf("release link %s: %w", e.Value.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// releaseLink hands a link back after pod went away, as the plugin's DEL
// does (store.ReleaseLink): pending for the peer to be paired again, or
// deleted with its end claims and VNI when the peer has no record.
func (r *remover) releaseLink(ctx context.Context, ns, id, pod string) error {
	rec, _, err := store.GetLink(ctx, r.kv, r.k, ns, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, peer := rec.EndsOf(pod)
	_, _, err = store.GetPod(ctx, r.kv, r.k, ns, peer.Pod)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	peerThere := err == nil
	if !r.dryRun {
		if _, err := store.ReleaseLink(ctx, r.kv, r.k, ns, id, pod, "", peerThere); err != nil {
			return err
		}
	}
	if peerThere {
		r.say("set link %s pending (%s has gone, %s waits)", id, pod, peer.Pod)
	} else {
		r.say("delete link %s (neither %s nor %s has a record)", id, pod, peer.Pod)
	}
	return nil
}

// gc removes the records of host's pods whose netns no longer exists (the
// container is gone) and releases the links of pods that have no record.
// Announced records stay: they describe pods that may come back. It returns
// how many pods and links it collected.
func (r *remover) gc(ctx context.Context, namespace, host string) (int, error) {
	pods, _, err := store.ListPods(ctx, r.kv, r.k, namespace)
	if err != nil {
		return 0, fmt.Errorf("list pods: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range pods {
		p := e.Value
		if p.Host != host || !netnsGone(p.Netns) {
			continue
		}
		r.say("collect %s/%s: container %s, netns %s is gone", p.Namespace, p.Name, shortID(p.ContainerID), p.Netns)
		if err := r.forgetPod(ctx, p.Namespace, p.Name, e.Version, false); err != nil {
			errs = append(errs, err)
		}
		n++
	}
	if r.dryRun {
		r.say("release the links of pods that have no record")
	} else if swept, err := store.SweepLinks(ctx, r.kv, r.k, namespace, ""); err != nil {
		errs = append(errs, fmt.Errorf("release links of missing pods: %w", err))
	} else if swept > 0 {
		r.say("release %d link(s) of pods that have no record", swept)
		n += swept
	}
	return n, errors.Join(errs...)
}

// netnsGone reports whether a recorded netns path no longer names a
// network namespace (deleted, unmounted, or its process exited). An empty
// path is never gone: nothing is known.
func netnsGone(path string) bool {
	if path == "" {
		return false
	}
	err := ns.IsNSorErr(path)
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	return errors.As(err, &notExist) || errors.As(err, &notNS)
}
