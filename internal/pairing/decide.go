package pairing

import (
	"errors"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// claimTTL is how long a same-host builder's claim on a link holds before
// another pod may take it over (the claimer died half way).
const claimTTL = 20 * time.Second

// step is what a pod does about one of its links right now.
type step int

const (
	// stepPending: the peer is not recorded yet, or its side acts next.
	stepPending step = iota
	// stepDone: this pod's end is up towards the peer's current incarnation.
	stepDone
	// stepWait: another pod holds a live claim to build the veth.
	stepWait
	// stepVeth: build the same-host veth for both pods.
	stepVeth
	// stepVxlan: build this pod's end of a cross-host vxlan.
	stepVxlan
)

// String names the step, for tests and logs.
func (s step) String() string {
	return [...]string{"pending", "done", "wait", "build veth", "build vxlan end"}[s]
}

// role says who decides: the ADD of the pod, or the agent's reconcile loop
// that finishes its pairing afterwards.
type role int

const (
	// roleAdd: the pod's own ADD, which builds what it can at once.
	roleAdd role = iota
	// roleAgent: the reconcile loop. Being the one process on the host, it
	// builds like an ADD; a live claim of an ADD makes it wait.
	roleAgent
)

// errStale means the record changed under a CAS: re-read and decide again.
var errStale = errors.New("link record changed")

// decide picks the step for link id from the view.
func decide(v *view, me *store.PodRecord, id string, r role) step {
	l, ok := v.link(id)
	if !ok {
		return stepDone // removed with its pods: nothing to wire
	}
	rec := l.val
	if rec.Blocked != "" {
		return stepPending // an end belongs to another link
	}
	_, theirs := rec.EndsOf(me.Name)
	peerV, ok := v.pod(theirs.Pod)
	if !ok {
		return stepPending
	}
	if peerV.val.Host != me.Host {
		return decideCrossHost(&rec, me, &peerV.val)
	}
	return decideSameHost(&rec, me, &peerV.val, r, time.Now())
}

// decideCrossHost: each pod builds its own vxlan end, towards the peer's
// current host; nothing to claim.
func decideCrossHost(rec *store.LinkRecord, me, peer *store.PodRecord) step {
	mine, _ := rec.EndsOf(me.Name)
	if rec.VNI != 0 && mine.Up && mine.ContainerID == me.ContainerID && mine.Remote == peer.HostAddress {
		return stepDone
	}
	return stepVxlan
}

// decideSameHost: one of the two pods builds the veth for both, under a
// claim recorded in the link.
func decideSameHost(rec *store.LinkRecord, me, peer *store.PodRecord, r role, now time.Time) step {
	mine, theirs := rec.EndsOf(me.Name)
	if rec.State == store.LinkWired && mine.Up && theirs.Up &&
		mine.ContainerID == me.ContainerID && theirs.ContainerID == peer.ContainerID {
		return stepDone
	}
	claimed := rec.Builder != ""
	live := claimed && now.Sub(rec.Claimed) < claimTTL
	switch {
	case live && rec.Builder != me.ContainerID:
		return stepWait
	case rec.State == store.LinkFailed && theirs.ContainerID == peer.ContainerID && mine.ContainerID == me.ContainerID:
		return stepPending // failed for these incarnations: a new one retries
	}
	return stepVeth
}
