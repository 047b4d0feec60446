package pairing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// countLinkWrites counts puts and deletes of link id's record for d.
func countLinkWrites(h *harness, id string, d time.Duration) (puts, dels int) {
	wctx, cancel := context.WithTimeout(h.ctx, d)
	defer cancel()
	key := h.keys.Link("default", id)
	for ev := range h.kv.Watch(wctx, h.keys.Links("default"), 0) {
		if ev.Err != nil || ev.KV.Key != key {
			continue
		}
		if ev.Type == store.Delete {
			dels++
		} else {
			puts++
		}
	}
	return puts, dels
}

// b is described by its annotations; a stale announced record of b declares
// another link towards a. That record does not speak for b, so no agent
// wants the link: it is not created (before, a's agent created it from the
// record and b's deleted it as undeclared, forever).
func TestStaleAnnouncedRecordOfAPodDescribedElsewhereMakesNoLink(t *testing.T) {
	h := newHarness(t)
	kube := newFakeKube()
	h.kubeAgents(kube, "h1", "h2")
	l1 := metadata.Link{Peer: "a", IfName: "e5", IP: "10.5.0.1/24", PeerIfName: "e6", PeerIP: "10.5.0.2/24"}
	l2 := metadata.Link{Peer: "a", IfName: "e1", IP: "10.1.0.1/24", PeerIfName: "e2", PeerIP: "10.1.0.2/24"}
	kube.set("a", map[string]string{metadata.KeyRatchet: "true"})
	kube.set("b", map[string]string{metadata.KeyRatchet: "true", metadata.KeyLinks: linksJSON(l1)})
	if _, err := store.PutJSON(h.ctx, h.kv, h.keys.Announce("default", "b"), declaring("b", l2)); err != nil {
		t.Fatal(err)
	}
	a, b := h.kubePod("h1", "c-a", "a"), h.kubePod("h2", "c-b", "b")
	mustAdd(t, h, a)
	mustAdd(t, h, b)
	h.waitState("b", "e5", "a", "e6", store.LinkWired)
	puts, dels := countLinkWrites(h, store.LinkID("b", "e1", "a", "e2"), 3*time.Second)
	t.Logf("in 3s: %d puts, %d deletes of the stale-announced link", puts, dels)
	if puts+dels > 0 || h.link("b", "e1", "a", "e2").ID != "" {
		t.Errorf("a link only a stale announced record declares was written: %d puts, %d deletes in 3s", puts, dels)
	}
}

// An invalid declaration is reported (log, Warning Event) once, not at
// every round of the loop.
func TestInvalidDeclarationIsReportedOnce(t *testing.T) {
	h := newHarness(t)
	kube := newFakeKube()
	h.kubeAgents(kube, "h1")
	kube.set("a", map[string]string{metadata.KeyRatchet: "true"})
	a := h.kubePod("h1", "c-a", "a")
	mustAdd(t, h, a)
	kube.set("a", map[string]string{metadata.KeyRatchet: "true", metadata.KeyLinks: `[{"peer":"b","ifname":"e1/x"}]`})
	kube.waitEvent(t, "a", ReasonInvalidLinks, "ratchet.links[0]")
	// Unrelated activity in the namespace: another pod's announced record.
	for i := range 10 {
		if _, err := store.PutJSON(h.ctx, h.kv, h.keys.Announce("default", "z"), map[string]string{"x": strings.Repeat("y", i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	kube.mu.Lock()
	n := 0
	for _, e := range kube.events {
		if strings.HasPrefix(e, "a "+ReasonInvalidLinks) {
			n++
		}
	}
	kube.mu.Unlock()
	t.Logf("%d InvalidLinks events for one unchanged invalid declaration", n)
	if n > 1 {
		t.Errorf("%d InvalidLinks events for one unchanged invalid declaration", n)
	}
}

// The source that described the pod is no longer configured (the netconf
// changed from docker to kubernetes): the record stands, its links are not
// dropped.
func TestRecordOfASourceNoLongerConfiguredStands(t *testing.T) {
	m := New(&config.NetConf{}, nil, Deps{Sources: []metadata.Source{}})
	kube := newFakeKube()
	kube.pods["default/a"] = map[string]string{} // a Kubernetes pod without ratchet keys
	m.sources = []metadata.Source{&kubeSource{pods: kube}, &etcdSource{m: m}}
	m.cache.reset(store.Keys{Prefix: "/ratchet"}, nil, 1)
	links := []metadata.Link{{Peer: "b", IfName: "e1", PeerIfName: "e2"}}
	rec := store.PodRecord{Namespace: "default", Name: "a", Source: "docker", Pod: metadata.Pod{Name: "a", Namespace: "default", Links: links}}
	pod, src, ok, err := m.declaredNow(&rec)
	if ok && err == nil && !pod.Describes() {
		t.Errorf("docker-described pod re-declared with no links (source %q) after the netconf dropped docker", src)
	}
}

// kubernetes listed first but the agent has no Kubernetes API (or the pod
// is not in the watch): a pod described by etcd is still re-declared.
func TestUnavailableSourceDoesNotStopReDeclaration(t *testing.T) {
	m := New(&config.NetConf{}, nil, Deps{Sources: []metadata.Source{}})
	m.sources = []metadata.Source{&kubeSource{}, &etcdSource{m: m}}
	m.cache.reset(store.Keys{Prefix: "/ratchet"}, nil, 1)
	links := []metadata.Link{{Peer: "b", IfName: "e1", PeerIfName: "e2"}}
	rec := store.PodRecord{Namespace: "default", Name: "a", Source: "etcd", Pod: metadata.Pod{Name: "a", Namespace: "default", Links: links}}
	if _, _, ok, _ := m.declaredNow(&rec); !ok {
		t.Errorf("etcd-described pod never re-declared: the kubernetes source (no API) is always unavailable")
	}
}

// a's annotation drops its link to b while b is away (deleted): the link
// and a's end go (b, the expecter, would not bring it back).
func TestLinkUndeclaredWhileItsPeerIsAwayIsRemoved(t *testing.T) {
	h := newHarness(t)
	l := metadata.Link{Peer: "b", IfName: "e1", IP: "10.1.0.1/24", PeerIfName: "e2", PeerIP: "10.1.0.2/24"}
	kube, a, b := h.kubePair("h1", "h2", map[string]string{metadata.KeyRatchet: "true", metadata.KeyLinks: linksJSON(l)}, nil)
	h.waitState("a", "e1", "b", "e2", store.LinkWired)
	mustDel(t, h, b)
	kube.set("a", map[string]string{metadata.KeyRatchet: "true"})
	h.waitNoIface(a, "e1")
	deadline := time.Now().Add(10 * time.Second)
	for h.link("a", "e1", "b", "e2").ID != "" {
		if time.Now().After(deadline) {
			t.Fatal("a no longer declares e1 and b is gone, yet its record stays")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The API does not answer for a pod the watch has not seen yet, and the
// call's annotations have none of ratchet's keys: a ratchet=true label
// cannot be seen, so the source is unavailable (ADD code 11, retried), not
// "no metadata" (a plain pod for good).
func TestKubeSourceUnavailableWhenOnlyALabelCouldMarkThePod(t *testing.T) {
	kube := newFakeKube()
	kube.down = true
	s := &kubeSource{pods: kube}
	q := metadata.Query{PodNamespace: "default", PodName: "a", Annotations: map[string]string{"kubernetes.io/config.seen": "x"}}
	pod, src, err := metadata.Lookup(context.Background(), []metadata.Source{s}, q)
	if pod == nil && err == nil {
		t.Errorf("API down: Lookup says not a ratchet pod (src %q), want an unavailable error (CNI code 11, retried)", src)
	}
}

// A record of an older agent (no source: it stands) whose pod's announcer
// wrote a link after ADD: the announced record speaks for the pod, the
// link is built and stays (no create/delete loop).
func TestOlderAgentsRecordWithAnnouncedLinksIsStable(t *testing.T) {
	h := newHarness(t)
	h.kubePair("h1", "h2", nil, nil)
	// b's record as an older agent wrote it: no Source.
	if _, _, err := store.Update(h.ctx, h.kv, h.keys.Pod("default", "b"), func(r *store.PodRecord) error { r.Source = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	l := metadata.Link{Peer: "a", IfName: "e1", IP: "10.1.0.1/24", PeerIfName: "e2", PeerIP: "10.1.0.2/24"}
	if _, err := store.PutJSON(h.ctx, h.kv, h.keys.Announce("default", "b"), declaring("b", l)); err != nil {
		t.Fatal(err)
	}
	puts, dels := countLinkWrites(h, store.LinkID("b", "e1", "a", "e2"), 3*time.Second)
	t.Logf("in 3s: %d puts, %d deletes", puts, dels)
	if dels > 0 {
		t.Errorf("the link flaps: %d puts, %d deletes in 3s", puts, dels)
	}
	h.waitState("b", "e1", "a", "e2", store.LinkWired)
}
