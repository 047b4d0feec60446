package pairing

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// fakeKube is the agent's watch of its node's pods, in memory: one for all
// simulated nodes (each agent sees every pod; only its own are local).
type fakeKube struct {
	mu     sync.Mutex
	pods   map[string]map[string]string
	subs   map[int]func(ns, name string)
	next   int
	events []string
	down   bool
}

var _ KubePods = (*fakeKube)(nil)

func newFakeKube() *fakeKube {
	return &fakeKube{pods: map[string]map[string]string{}, subs: map[int]func(ns, name string){}}
}

func (k *fakeKube) Labels(_ context.Context, ns, name string) (map[string]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.down {
		return nil, metadata.Unavailable("kubernetes API", errors.New("refused"))
	}
	l, ok := k.pods[ns+"/"+name]
	if !ok || len(l) == 0 {
		return nil, metadata.ErrNoMetadata
	}
	return maps.Clone(l), nil
}

func (k *fakeKube) Cached(ns, name string) (map[string]string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.pods[ns+"/"+name]
	return maps.Clone(l), ok
}

func (k *fakeKube) Subscribe(fn func(ns, name string)) func() {
	k.mu.Lock()
	defer k.mu.Unlock()
	id := k.next
	k.next++
	k.subs[id] = fn
	return func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		delete(k.subs, id)
	}
}

func (k *fakeKube) Event(ns, name, reason, message string, warn bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.events = append(k.events, name+" "+reason+" "+message)
}

// set replaces a pod's ratchet keys (as kubectl annotate does) and tells
// the subscribers.
func (k *fakeKube) set(name string, labels map[string]string) {
	k.mu.Lock()
	k.pods["default/"+name] = labels
	subs := slices.Collect(maps.Values(k.subs))
	k.mu.Unlock()
	for _, fn := range subs {
		fn("default", name)
	}
}

// waitEvent waits for an Event on pod with reason whose message has substr.
func (k *fakeKube) waitEvent(t *testing.T, pod, reason, substr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		k.mu.Lock()
		evs := slices.Clone(k.events)
		k.mu.Unlock()
		for _, e := range evs {
			if strings.HasPrefix(e, pod+" "+reason+" ") && strings.Contains(e, substr) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event on %s about %q; events: %q", reason, pod, substr, evs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kubeAgents makes every host's agent read the kubernetes source (kube)
// and then the announced records, as a Kubernetes node's ratchetd does.
func (h *harness) kubeAgents(kube *fakeKube, hosts ...string) {
	for _, host := range hosts {
		m := h.managerWith(host, []metadata.Source{}, func(m *Manager) {
			m.kube = kube
			m.sources = []metadata.Source{&kubeSource{pods: kube}, &etcdSource{m: m}}
		})
		waitLive(h.t, m)
	}
}

// kubePod is a Kubernetes pod sandbox: named by CNI_ARGS, no labels of
// its own in the harness's label source.
func (h *harness) kubePod(host, id, name string) *pod {
	p := h.newPod(host, id, nil)
	p.args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + name
	return p
}

// kubePair starts the agents of h1 and h2 reading a fake Kubernetes watch,
// gives pods a and b the ratchet keys la and lb (nil: only ratchet=true)
// and adds a on hostA and b on hostB.
func (h *harness) kubePair(hostA, hostB string, la, lb map[string]string) (kube *fakeKube, a, b *pod) {
	h.t.Helper()
	kube = newFakeKube()
	h.kubeAgents(kube, "h1", "h2")
	for name, l := range map[string]map[string]string{"a": la, "b": lb} {
		if l == nil {
			l = map[string]string{metadata.KeyRatchet: "true"}
		}
		kube.set(name, l)
	}
	a, b = h.kubePod(hostA, "c-a", "a"), h.kubePod(hostB, "c-b", "b")
	mustAdd(h.t, h, a)
	mustAdd(h.t, h, b)
	return kube, a, b
}

func linksJSON(links ...metadata.Link) string {
	b, _ := json.Marshal(links)
	return string(b)
}

// waitNoIface waits until the interface is gone from the pod (bounded).
func (h *harness) waitNoIface(p *pod, name string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, found := h.wire.get(p.netns, name); !found {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s of %s is still there", name, p.id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Links declared in a running pod's annotations are wired, re-applied
// when changed and removed when dropped, on both ends, without restarting
// either pod (same host and across hosts); each end's agent records the
// Events on its pod.
func TestAnnotationChangesAreWiredLive(t *testing.T) {
	for _, hosts := range [][2]string{{"h1", "h1"}, {"h1", "h2"}} {
		t.Run(hosts[0]+"-"+hosts[1], func(t *testing.T) {
			h := newHarness(t)
			first := metadata.Link{Peer: "b", IfName: "e1", IP: "10.1.0.1/24", PeerIfName: "e2", PeerIP: "10.1.0.2/24"}
			kube, a, b := h.kubePair(hosts[0], hosts[1], map[string]string{metadata.KeyRatchet: "true", metadata.KeyLinks: linksJSON(first)}, nil)
			h.waitState("a", "e1", "b", "e2", store.LinkWired)
			kube.waitEvent(t, "a", ReasonLinkWired, store.LinkID("a", "e1", "b", "e2"))
			kube.waitEvent(t, "b", ReasonLinkWired, store.LinkID("a", "e1", "b", "e2"))

			// A second link is annotated on a.
			second := metadata.Link{Peer: "b", IfName: "e3", IP: "10.2.0.1/24", PeerIfName: "e4", PeerIP: "10.2.0.2/24"}
			kube.set("a", map[string]string{metadata.KeyRatchet: "true", metadata.KeyLinks: linksJSON(first, second)})
			h.waitState("a", "e3", "b", "e4", store.LinkWired)
			h.waitIface(a, "e3", "up", func(i fakeIface) bool { return !i.down })
			h.waitIface(b, "e4", "up with its address", func(i fakeIface) bool {
				return !i.down && slices.Equal(i.addrs, []string{"10.2.0.2/24"})
			})

			// The first link's address changes.
			first.PeerIP = "10.1.0.22/24"
			kube.set("a", map[string]string{metadata.KeyRatchet: "true", metadata.KeyLinks: linksJSON(first, second)})
			h.waitIface(b, "e2", "the new address", func(i fakeIface) bool { return slices.Equal(i.addrs, []string{"10.1.0.22/24"}) })
			h.waitState("a", "e1", "b", "e2", store.LinkWired)

			// The second link goes from the annotation.
			kube.set("a", map[string]string{metadata.KeyRatchet: "true", metadata.KeyLinks: linksJSON(first)})
			h.waitNoIface(a, "e3")
			h.waitNoIface(b, "e4")
			if rec := h.link("a", "e3", "b", "e4"); rec.ID != "" {
				t.Fatalf("the dropped link's record is still there: %+v", rec)
			}
			kube.waitEvent(t, "b", ReasonLinkRemoved, store.LinkID("a", "e3", "b", "e4"))
			if _, ok := h.wire.get(b.netns, "e2"); !ok {
				t.Fatal("the link that stays lost its end")
			}

			// An invalid edit leaves the links as they are.
			kube.set("a", map[string]string{metadata.KeyRatchet: "true", metadata.KeyLinks: `[{"peer":"b","ifname":"e1/x"}]`})
			kube.waitEvent(t, "a", ReasonInvalidLinks, "ratchet.links[0]")
			if rec := h.link("a", "e1", "b", "e2"); rec.State != store.LinkWired {
				t.Fatalf("after an invalid edit the link is %q", rec.State)
			}
			mustDel(t, h, a)
			mustDel(t, h, b)
			expectNothingLeft(t, h, a, b)
		})
	}
}

// A pod only marked as a ratchet pod (the label ratchet=true) gets the
// links an announcer writes after it started: the sidecar form.
func TestMarkedPodGetsTheLinksAnnouncedLater(t *testing.T) {
	h := newHarness(t)
	_, a, b := h.kubePair("h1", "h2", nil, nil)
	if got := h.records(); slices.ContainsFunc(got, func(k string) bool { return strings.Contains(k, "/links/") }) {
		t.Fatalf("links before any announcement: %v", got)
	}
	link := metadata.Link{Peer: "b", IfName: "e1", IP: "10.1.0.1/24", PeerIfName: "e2", PeerIP: "10.1.0.2/24"}
	ann := declaring("a", link)
	if _, err := store.PutJSON(h.ctx, h.kv, h.keys.Announce("default", "a"), ann); err != nil {
		t.Fatal(err)
	}
	h.waitState("a", "e1", "b", "e2", store.LinkWired)
	h.waitIface(b, "e2", "up", func(i fakeIface) bool { return !i.down })
	rec, _, err := store.GetPod(h.ctx, h.kv, h.keys, "default", "a")
	if err != nil || rec.Source != "etcd" || len(rec.Pod.Links) != 1 {
		t.Fatalf("a's record after the announcement: source %q, links %v (%v); want etcd's one link", rec.Source, rec.Pod.Links, err)
	}
	// The announcement withdrawn: the link goes, the pods stay.
	if err := h.kv.Delete(h.ctx, h.keys.Announce("default", "a"), 0); err != nil {
		t.Fatal(err)
	}
	h.waitNoIface(a, "e1")
	h.waitNoIface(b, "e2")
	mustDel(t, h, a)
	mustDel(t, h, b)
	expectNothingLeft(t, h, a, b)
}

// The kubernetes source: the call's annotations first, overlaid on the
// watch's labels; the pod's own name; without the API, the annotations
// alone.
func TestKubeSourceReadsTheCallsAnnotationsAndTheWatch(t *testing.T) {
	kube := newFakeKube()
	kube.pods["lab/a"] = map[string]string{metadata.KeyRatchet: "true", metadata.KeyLocalIfName: "old"}
	s := &kubeSource{pods: kube}
	q := metadata.Query{PodNamespace: "lab", PodName: "a", Annotations: map[string]string{metadata.KeyLocalIfName: "e1", "other": "x"}}
	got, err := s.Labels(context.Background(), q)
	want := map[string]string{metadata.KeyRatchet: "true", metadata.KeyLocalIfName: "e1", metadata.KeyPodName: "a", metadata.KeyNamespace: "lab"}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("Labels = %v, %v; want %v", got, err, want)
	}
	kube.down = true
	q.Annotations = map[string]string{metadata.KeyRatchet: "true"}
	if got, err = s.Labels(context.Background(), q); err != nil || got[metadata.KeyRatchet] != "true" {
		t.Fatalf("API down, annotations given: %v, %v", got, err)
	}
	q.Annotations = nil
	if _, err = s.Labels(context.Background(), q); !errors.Is(err, metadata.ErrSourceUnavailable) {
		t.Fatalf("API down, no annotations: %v, want unavailable", err)
	}
	none := &kubeSource{}
	if _, err = none.Labels(context.Background(), metadata.Query{PodName: "a"}); !errors.Is(err, metadata.ErrNoMetadata) {
		t.Fatalf("no watch, no annotations: %v, want no metadata", err)
	}
	q.Annotations = map[string]string{metadata.KeyRatchet: "true", metadata.KeyPodName: "b"}
	var me *metadata.Error
	if _, err = none.Labels(context.Background(), q); !errors.As(err, &me) || me.Key != metadata.KeyPodName {
		t.Fatalf("another pod's name: %v, want an error naming %s", err, metadata.KeyPodName)
	}
}

// namedSource is a fixed source (its labels cannot change) with a name.
type namedSource struct{ name string }

func (s namedSource) Name() string { return s.name }
func (s namedSource) Labels(context.Context, metadata.Query) (map[string]string, error) {
	return nil, metadata.ErrNoMetadata
}

// What a pod record says stands when its source cannot change (Docker
// labels), when the record does not name its source (an older agent's),
// and when a live source cannot say now; a pod whose announced record is
// withdrawn keeps being a ratchet pod without links.
func TestDeclaredNowKeepsWhatCannotBeReRead(t *testing.T) {
	m := New(&config.NetConf{}, nil, Deps{Sources: []metadata.Source{}})
	m.sources = []metadata.Source{namedSource{"docker"}, &etcdSource{m: m}}
	links := []metadata.Link{{Peer: "b", IfName: "e1", PeerIfName: "e2"}}
	marked := store.PodRecord{Namespace: "default", Name: "a", Source: "docker", Pod: metadata.Pod{Name: "a", Namespace: "default"}}
	if pod, _, ok, err := m.declaredNow(&marked); !ok || err != nil || !reflect.DeepEqual(*pod, marked.Pod) {
		t.Fatalf("a pod Docker only marks, the watched copy not live: %+v (%v, %v); want its record's", pod, ok, err)
	}
	rec := store.PodRecord{Namespace: "default", Name: "a", Source: "docker", Pod: metadata.Pod{Name: "a", Namespace: "default", Links: links}}
	m.cache.reset(store.Keys{Prefix: "/ratchet"}, nil, 1)
	if pod, src, ok, err := m.declaredNow(&rec); !ok || err != nil || src != "docker" || !reflect.DeepEqual(*pod, rec.Pod) {
		t.Fatalf("Docker-described pod: %+v from %q (%v, %v); want its record's", pod, src, ok, err)
	}
	for _, src := range []string{"", "kubernetes"} {
		rec.Source = src
		if _, _, ok, _ := m.declaredNow(&rec); ok {
			t.Fatalf("re-declared a record whose source %q is not this netconf's", src)
		}
	}
	rec.Source = "etcd"
	if pod, _, ok, err := m.declaredNow(&rec); !ok || err != nil || pod.Describes() || pod.Name != "a" {
		t.Fatalf("announced record withdrawn: %+v (%v, %v); want the pod without links", pod, ok, err)
	}
}
