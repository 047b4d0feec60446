package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrEndTaken matches an *EndConflict: an interface end already belongs to
// another link.
var ErrEndTaken = errors.New("interface end belongs to another link")

// EndConflict says which link owns an interface end that another link
// wanted.
type EndConflict struct {
	Pod, IfName string
	// Owner is the ID of the link that holds the end.
	Owner string
}

// Error names the end and its owner.
func (e *EndConflict) Error() string {
	return fmt.Sprintf("interface %s of pod %s belongs to link %s", e.IfName, e.Pod, e.Owner)
}

// Is makes an EndConflict match ErrEndTaken.
func (e *EndConflict) Is(target error) bool { return target == ErrEndTaken }

// EndClaim is the value of an end's claim key.
type EndClaim struct {
	// Link is the ID of the link that owns the end.
	Link string `json:"link"`
	// Claimed is when; a claim whose link has no record is taken over only
	// after ClaimGrace (its claimer creates the record right after).
	Claimed time.Time `json:"claimed"`
}

// ClaimGrace is how long a claim whose link has no record yet holds.
const ClaimGrace = 30 * time.Second

// ClaimEnd makes link id the owner of the interface end (pod, ifname), so
// that an end belongs to exactly one link. Claiming an end the link already
// holds is a no-op. A claim of another link is an *EndConflict, unless that
// link's record is gone and the claim older than ClaimGrace (its claimer
// died between the two writes): then it is taken over.
func ClaimEnd(ctx context.Context, s Store, k Keys, ns, pod, ifname, id string) error {
	key := k.End(ns, pod, ifname)
	mine := EndClaim{Link: id, Claimed: time.Now().UTC()}
	for range MaxRetries {
		_, err := CreateJSON(ctx, s, key, mine, 0)
		if err == nil || !errors.Is(err, ErrExists) {
			return err
		}
		cur, ver, err := GetJSON[EndClaim](ctx, s, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if cur.Link == id {
			return nil
		}
		if live, err := liveClaim(ctx, s, k, ns, &cur); err != nil {
			return err
		} else if live {
			return &EndConflict{Pod: pod, IfName: ifname, Owner: cur.Link}
		}
		if _, err := UpdateJSON(ctx, s, key, mine, ver); err == nil {
			return nil
		} else if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return fmt.Errorf("claim %s: %w %d times", key, ErrConflict, MaxRetries)
}

// liveClaim reports whether a claim holds: its link has a record, or it is
// younger than ClaimGrace.
func liveClaim(ctx context.Context, s Store, k Keys, ns string, c *EndClaim) (bool, error) {
	_, err := s.Get(ctx, k.Link(ns, c.Link))
	switch {
	case err == nil:
		return true, nil
	case !errors.Is(err, ErrNotFound):
		return false, err
	}
	return time.Since(c.Claimed) < ClaimGrace, nil
}

// CheckEnds reports, without claiming anything, the first end of rec that
// a live claim of another link holds.
func CheckEnds(ctx context.Context, s Store, k Keys, rec *LinkRecord) (*EndConflict, error) {
	for _, end := range []LinkEnd{rec.A, rec.B} {
		c, _, err := GetJSON[EndClaim](ctx, s, k.End(rec.Namespace, end.Pod, end.IfName))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if c.Link == rec.ID {
			continue
		}
		if live, err := liveClaim(ctx, s, k, rec.Namespace, &c); err != nil || live {
			return &EndConflict{Pod: end.Pod, IfName: end.IfName, Owner: c.Link}, err
		}
	}
	return nil, nil
}

// ClaimEnds claims both ends of rec for it; on a conflict the end claimed
// first is given back.
func ClaimEnds(ctx context.Context, s Store, k Keys, rec *LinkRecord) error {
	if err := ClaimEnd(ctx, s, k, rec.Namespace, rec.A.Pod, rec.A.IfName, rec.ID); err != nil {
		return err
	}
	if err := ClaimEnd(ctx, s, k, rec.Namespace, rec.B.Pod, rec.B.IfName, rec.ID); err != nil {
		return errors.Join(err, ReleaseEnd(ctx, s, k, rec.Namespace, rec.A.Pod, rec.A.IfName, rec.ID))
	}
	return nil
}

// ReleaseEnd deletes the claim of (pod, ifname) if link id holds it.
func ReleaseEnd(ctx context.Context, s Store, k Keys, ns, pod, ifname, id string) error {
	key := k.End(ns, pod, ifname)
	_, err := DeleteIf(ctx, s, key, func(c *EndClaim) bool { return c.Link != id })
	if err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return nil
}

// Release is what ReleaseLink did.
type Release int

// ReleaseLink outcomes.
const (
	// Kept: the end belongs to another incarnation of the pod (or the
	// link is gone); nothing was changed.
	Kept Release = iota
	// Pending: the pod's end is marked down and the link waits for the pod
	// to come back; the peer keeps its record.
	Pending
	// Deleted: the link's record, end claims and VNI are gone.
	Deleted
)

// ReleaseLink hands link id back after pod went away. containerID is the
// pod's container whose end is released ("" releases whatever container
// holds it). When the peer still has a record (peerThere), the pod's end is
// set down and the link pending (a veth takes the peer's end along);
// otherwise the link's record is deleted, with its end claims and VNI.
func ReleaseLink(ctx context.Context, s Store, k Keys, ns, id, pod, containerID string, peerThere bool) (Release, error) {
	if !peerThere {
		return DeleteLink(ctx, s, k, ns, id, func(r *LinkRecord) bool { return !endOf(r, pod, containerID) })
	}
	return release(ctx, s, k, ns, id, pod, containerID, false)
}

// ParkLink is ReleaseLink for a same-host veth whose departing end was
// parked (see wiring.Park): the peer's end stays up in its pod, and the
// link waits for the pod to come back.
func ParkLink(ctx context.Context, s Store, k Keys, ns, id, pod, containerID string) (Release, error) {
	return release(ctx, s, k, ns, id, pod, containerID, true)
}

// endOf reports whether pod's end of r is containerID's ("" matches any).
func endOf(r *LinkRecord, pod, containerID string) bool {
	mine, _ := r.EndsOf(pod)
	return containerID == "" || mine.ContainerID == "" || mine.ContainerID == containerID
}

func release(ctx context.Context, s Store, k Keys, ns, id, pod, containerID string, parked bool) (Release, error) {
	_, _, err := Update(ctx, s, k.Link(ns, id), func(r *LinkRecord) error {
		if !endOf(r, pod, containerID) {
			return ErrUnchanged
		}
		mine, theirs := r.EndsOf(pod)
		mine.Up, mine.ContainerID, mine.Remote, mine.Applied = false, "", "", ""
		if r.VNI == 0 && !parked {
			theirs.Up = false // the veth went with this end
		}
		if r.Builder == containerID || containerID == "" {
			r.Builder = ""
		}
		now := time.Now().UTC()
		r.State, r.Updated, r.Gone = LinkPending, now, now
		r.Reason = fmt.Sprintf("pod %s/%s went away at %s; waiting for it to come back", ns, pod, now.Format(time.RFC3339))
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return Kept, nil
	}
	if err != nil {
		return Kept, fmt.Errorf("release link %s: %w", id, err)
	}
	return Pending, nil
}

// DeleteLink deletes link id's record unless keep says otherwise, then its
// end claims and VNI reservation.
func DeleteLink(ctx context.Context, s Store, k Keys, ns, id string, keep func(*LinkRecord) bool) (Release, error) {
	var last LinkRecord
	deleted, err := DeleteIf(ctx, s, k.Link(ns, id), func(r *LinkRecord) bool {
		last = *r
		return keep(r)
	})
	if err != nil {
		return Kept, fmt.Errorf("delete link %s: %w", id, err)
	}
	if !deleted {
		return Kept, nil
	}
	errs := []error{
		ReleaseEnd(ctx, s, k, ns, last.A.Pod, last.A.IfName, id),
		ReleaseEnd(ctx, s, k, ns, last.B.Pod, last.B.IfName, id),
	}
	if last.VNI != 0 {
		if err := ReleaseVNI(ctx, s, k, last.VNI, k.Link(ns, id)); err != nil {
			errs = append(errs, err)
		}
	}
	return Deleted, errors.Join(errs...)
}

// EndsOf returns the end of r that belongs to pod and the other one.
func (r *LinkRecord) EndsOf(pod string) (mine, peer *LinkEnd) {
	if r.A.Pod == pod {
		return &r.A, &r.B
	}
	return &r.B, &r.A
}

// Involves reports whether r has an end on pod.
func (r *LinkRecord) Involves(pod string) bool {
	return r.A.Pod == pod || r.B.Pod == pod
}

// SweepLinks releases the link ends of ns ("" = all namespaces) whose pod
// has no record any more (a DEL that raced an ADD, a crashed teardown): the
// end is set down and the link pending, or the link deleted when neither
// pod has a record. host limits the sweep to ends recorded on that host
// ("" = all hosts). It returns how many links it changed.
func SweepLinks(ctx context.Context, s Store, k Keys, ns, host string) (int, error) {
	links, _, err := ListLinks(ctx, s, k, ns)
	if err != nil {
		return 0, fmt.Errorf("list links: %w", err)
	}
	pods, _, err := ListPods(ctx, s, k, ns)
	if err != nil {
		return 0, fmt.Errorf("list pods: %w", err)
	}
	present := map[string]bool{}
	for _, p := range pods {
		present[p.Value.Namespace+"/"+p.Value.Name] = true
	}
	n := 0
	var errs []error
	for _, e := range links {
		r := e.Value
		for _, end := range []*LinkEnd{&r.A, &r.B} {
			_, peer := r.EndsOf(end.Pod)
			if present[r.Namespace+"/"+end.Pod] || !orphan(end, peer, host, present[r.Namespace+"/"+peer.Pod]) {
				continue
			}
			out, err := ReleaseLink(ctx, s, k, r.Namespace, r.ID, end.Pod, end.ContainerID, present[r.Namespace+"/"+peer.Pod])
			if err != nil {
				errs = append(errs, err)
			}
			if out != Kept {
				n++
			}
			break
		}
	}
	return n, errors.Join(errs...)
}

// orphan reports whether an end whose pod has no record still holds
// something to release on host: it is marked up or owned, or neither pod
// exists (the record itself is left over).
func orphan(end, peer *LinkEnd, host string, peerThere bool) bool {
	if host != "" && end.Host != host && (peerThere || peer.Host != host) {
		return false
	}
	return end.Up || end.ContainerID != "" || !peerThere
}
