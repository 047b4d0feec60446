package kubemeta

import (
	"context"
	"errors"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/pairing"
)

var _ pairing.KubePods = (*Pods)(nil)

const node = "node-a"

var podsGVR = corev1.SchemeGroupVersion.WithResource("pods")

// apiServer is a fake clientset that, like the API server, applies the
// spec.nodeName field selector to the pods it lists and watches (the
// fake's tracker ignores field selectors), and records the selectors.
type apiServer struct {
	*fake.Clientset
	mu        sync.Mutex
	selectors []string
}

func newAPIServer(t *testing.T, objs ...runtime.Object) *apiServer {
	t.Helper()
	s := &apiServer{Clientset: fake.NewClientset(objs...)}
	onNode := func(sel fields.Selector, obj runtime.Object) bool {
		pod, ok := obj.(*corev1.Pod)
		return !ok || sel.Matches(fields.Set{"spec.nodeName": pod.Spec.NodeName})
	}
	s.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sel := a.(k8stesting.ListAction).GetListRestrictions().Fields
		s.record(sel)
		obj, err := s.Tracker().List(podsGVR, corev1.SchemeGroupVersion.WithKind("Pod"), a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		list := obj.(*corev1.PodList)
		kept := list.Items[:0]
		for _, p := range list.Items {
			if onNode(sel, &p) {
				kept = append(kept, p)
			}
		}
		list.Items = kept
		return true, list, nil
	})
	s.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		sel := a.(k8stesting.WatchAction).GetWatchRestrictions().Fields
		s.record(sel)
		w, err := s.Tracker().Watch(podsGVR, a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		return true, watch.Filter(w, func(e watch.Event) (watch.Event, bool) { return e, onNode(sel, e.Object) }), nil
	})
	return s
}

func (s *apiServer) record(sel fields.Selector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.selectors = append(s.selectors, sel.String())
}

func pod(ns, name, nodeName string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{NodeName: nodeName},
	}
}

// start builds and starts a Pods on the fake API server, closed when the
// test ends, and waits for its first list.
func start(t *testing.T, s *apiServer) *Pods {
	t.Helper()
	p, err := New(Options{Client: s, Node: node, APIHost: "https://192.0.2.1:6443"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	p.Start(ctx)
	t.Cleanup(p.Close)
	if !p.WaitSynced(ctx) {
		t.Fatal("informer not synced")
	}
	return p
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchKeepsTheNodesPodsAndTheirRatchetKeys(t *testing.T) {
	ctx := context.Background()
	s := newAPIServer(t,
		pod("lab", "a", node,
			map[string]string{"ratchet": "true", "ratchet.primary": "false", "app": "x"},
			map[string]string{"ratchet.primary": "true", "ratchet.links": `[{"peer":"b"}]`, "other.io/x": "y"}),
		pod("lab", "elsewhere", "node-b", map[string]string{"ratchet": "true"}, nil),
		pod("lab", "plain", node, map[string]string{"app": "web"}, nil),
	)
	p := start(t, s)

	got, ok := p.Cached("lab", "a")
	want := map[string]string{"ratchet": "true", "ratchet.primary": "true", "ratchet.links": `[{"peer":"b"}]`}
	if !ok || !maps.Equal(got, want) {
		t.Fatalf("Cached(lab/a) = %v, %v; want %v (annotations over labels, ratchet keys only)", got, ok, want)
	}
	if l, err := p.Labels(ctx, "lab", "a"); err != nil || !maps.Equal(l, want) {
		t.Fatalf("Labels(lab/a) = %v, %v", l, err)
	}
	if _, ok := p.Cached("lab", "elsewhere"); ok {
		t.Fatal("a pod of another node is in the cache")
	}
	if l, ok := p.Cached("lab", "plain"); !ok || len(l) != 0 {
		t.Fatalf("Cached(lab/plain) = %v, %v; want no keys, seen", l, ok)
	}
	if _, err := p.Labels(ctx, "lab", "plain"); !errors.Is(err, metadata.ErrNoMetadata) {
		t.Fatalf("Labels of a pod without ratchet keys: %v, want ErrNoMetadata", err)
	}
	s.mu.Lock()
	sels := append([]string(nil), s.selectors...)
	s.mu.Unlock()
	for _, sel := range sels {
		if sel != "spec.nodeName="+node {
			t.Errorf("list/watch with field selector %q", sel)
		}
	}
	if len(sels) == 0 {
		t.Error("no list or watch seen")
	}

	// The cache holds nothing but identity and ratchet keys.
	obj, _, _ := p.informer.GetStore().GetByKey("lab/a")
	if c := obj.(*corev1.Pod); c.Labels != nil || c.Spec.NodeName != "" || c.UID != "uid-a" {
		t.Fatalf("cached pod not stripped: %+v", c)
	}

	// Update, add, delete reach the cache.
	a, _ := s.CoreV1().Pods("lab").Get(ctx, "a", metav1.GetOptions{})
	a.Annotations["ratchet.primary"] = "false"
	if _, err := s.CoreV1().Pods("lab").Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the update", func() bool { l, _ := p.Cached("lab", "a"); return l["ratchet.primary"] == "false" })
	if _, err := s.CoreV1().Pods("lab").Create(ctx, pod("lab", "c", node, map[string]string{"ratchet": "true"}, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new pod", func() bool { _, ok := p.Cached("lab", "c"); return ok })
	if err := s.CoreV1().Pods("lab").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion", func() bool { _, ok := p.Cached("lab", "a"); return !ok })
}

func TestLabelsOfAnUnseenPodAsksTheAPIOnce(t *testing.T) {
	ctx := context.Background()
	s := newAPIServer(t)
	p := start(t, s)
	var gets int
	var mu sync.Mutex
	s.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		gets++
		mu.Unlock()
		if a.(k8stesting.GetAction).GetName() == "late" {
			return true, pod("lab", "late", node, map[string]string{"ratchet": "true"}, map[string]string{"ratchet.primary": "true"}), nil
		}
		return true, nil, apierrors.NewNotFound(podsGVR.GroupResource(), a.(k8stesting.GetAction).GetName())
	})

	if _, ok := p.Cached("lab", "late"); ok {
		t.Fatal("Cached answered for a pod the watch has not seen")
	}
	l, err := p.Labels(ctx, "lab", "late")
	if err != nil || !maps.Equal(l, map[string]string{"ratchet": "true", "ratchet.primary": "true"}) {
		t.Fatalf("Labels(lab/late) = %v, %v", l, err)
	}
	_, err = p.Labels(ctx, "lab", "gone")
	if !errors.Is(err, metadata.ErrNoMetadata) || !strings.Contains(err.Error(), "lab/gone") {
		t.Fatalf("Labels of a missing pod: %v, want ErrNoMetadata naming lab/gone", err)
	}
	mu.Lock()
	if gets != 2 {
		t.Errorf("%d GETs, want 2", gets)
	}
	mu.Unlock()

	// A name that cannot be a pod's never reaches the API.
	if _, err := p.Labels(ctx, "lab", "../../x"); !errors.Is(err, metadata.ErrNoMetadata) {
		t.Fatalf("Labels of an invalid name: %v", err)
	}
	mu.Lock()
	if gets != 2 {
		t.Errorf("an invalid name was asked for (%d GETs)", gets)
	}
	mu.Unlock()
}

func TestLabelsAPIUnavailable(t *testing.T) {
	s := newAPIServer(t)
	p := start(t, s)
	s.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewTimeoutError("slow", 1)
	})
	_, err := p.Labels(context.Background(), "lab", "x")
	if !errors.Is(err, metadata.ErrSourceUnavailable) || !strings.Contains(err.Error(), "kubernetes API at https://192.0.2.1:6443") {
		t.Fatalf("Labels with the API timing out: %v, want ErrSourceUnavailable naming the API", err)
	}
}

func TestLabelsKeepsOverLimitValuesForParseToReject(t *testing.T) {
	huge := strings.Repeat("x", MaxValueLen+100)
	s := newAPIServer(t, pod("lab", "big", node, nil, map[string]string{"ratchet": "true", "ratchet.links": huge}))
	p := start(t, s)
	l, ok := p.Cached("lab", "big")
	if !ok || len(l["ratchet.links"]) != MaxValueLen || l["ratchet"] != "true" {
		t.Fatalf("over-limit value: kept %d bytes, ok %v; want %d", len(l["ratchet.links"]), ok, MaxValueLen)
	}
	_, err := metadata.Parse(l)
	var me *metadata.Error
	if !errors.As(err, &me) || me.Key != metadata.KeyLinks {
		t.Fatalf("Parse of the kept value: %v, want an error naming %s", err, metadata.KeyLinks)
	}
}

func TestSubscribeFiresOnRatchetKeyChangesOnly(t *testing.T) {
	ctx := context.Background()
	s := newAPIServer(t, pod("lab", "a", node, map[string]string{"ratchet": "true"}, nil),
		pod("lab", "z", node, map[string]string{"ratchet": "true"}, nil))
	p := start(t, s)

	var mu sync.Mutex
	var got []string
	cancel := p.Subscribe(func(ns, name string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ns+"/"+name)
	})
	seen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	pods := s.CoreV1().Pods("lab")

	// Unrelated changes: status, a non-ratchet label.
	a, _ := pods.Get(ctx, "a", metav1.GetOptions{})
	a.Status.Phase = corev1.PodRunning
	a.Labels["app"] = "web"
	if _, err := pods.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Then a ratchet change of another pod; once it is heard, the
	// unrelated one was handled before it (one watch, in order) and must
	// not have fired.
	z, _ := pods.Get(ctx, "z", metav1.GetOptions{})
	z.Annotations = map[string]string{"ratchet.links": "[]"}
	if _, err := pods.Update(ctx, z, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ratchet change", func() bool { return len(seen()) > 0 })
	time.Sleep(100 * time.Millisecond)
	if g := seen(); len(g) != 1 || g[0] != "lab/z" {
		t.Fatalf("notifications %v, want one for lab/z (the status change of lab/a must not fire)", g)
	}

	if _, err := pods.Create(ctx, pod("lab", "b", node, nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new pod", func() bool { return len(seen()) == 2 })
	if err := pods.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion", func() bool { return len(seen()) == 3 })
	if g := seen(); g[1] != "lab/b" || g[2] != "lab/a" {
		t.Fatalf("notifications %v", g)
	}

	cancel()
	if _, err := pods.Create(ctx, pod("lab", "c", node, nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "lab/c in the cache", func() bool { _, ok := p.Cached("lab", "c"); return ok })
	time.Sleep(100 * time.Millisecond)
	if g := seen(); len(g) != 3 {
		t.Fatalf("notified after cancel: %v", g)
	}
}

func TestSlowSubscriberDoesNotBlockTheWatch(t *testing.T) {
	ctx := context.Background()
	s := newAPIServer(t)
	p := start(t, s)
	release := make(chan struct{})
	defer close(release)
	p.Subscribe(func(string, string) { <-release })
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.CoreV1().Pods("lab").Create(ctx, pod("lab", n, node, nil, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the cache to hold all three pods while the subscriber blocks", func() bool {
		_, ok := p.Cached("lab", "c")
		return ok
	})
}

func TestEventIsCreatedOnThePod(t *testing.T) {
	s := newAPIServer(t, pod("lab", "a", node, map[string]string{"ratchet": "true"}, nil))
	p := start(t, s)
	p.Event("lab", "a", "LinkFailed", "eth1: "+strings.Repeat("m", 2000), true)
	var ev corev1.Event
	eventually(t, "the Event", func() bool {
		l, err := s.CoreV1().Events("lab").List(context.Background(), metav1.ListOptions{})
		if err != nil || len(l.Items) == 0 {
			return false
		}
		ev = l.Items[0]
		return true
	})
	io := ev.InvolvedObject
	if io.Kind != "Pod" || io.Name != "a" || io.Namespace != "lab" || io.UID != "uid-a" {
		t.Errorf("involvedObject %+v", io)
	}
	if ev.Reason != "LinkFailed" || ev.Type != corev1.EventTypeWarning || ev.Source.Component != "ratchetd" || ev.Source.Host != node {
		t.Errorf("event %+v", ev)
	}
	if len(ev.Message) > MaxEventMessageLen+3 || !strings.HasPrefix(ev.Message, "eth1: ") {
		t.Errorf("message of %d bytes", len(ev.Message))
	}
}

func TestEventQueueFullDropsWithoutBlocking(t *testing.T) {
	s := newAPIServer(t)
	block := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	s.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		once.Do(func() { close(entered) })
		<-block
		return true, nil, errors.New("refused")
	})
	p := start(t, s)
	defer close(block) // before p.Close (cleanup) so the sender can end
	p.Event("lab", "a", "First", "m", false)
	<-entered // the sender is stuck in its first Create
	done := make(chan struct{})
	go func() {
		for range EventQueueLen + 50 {
			p.Event("lab", "a", "More", "m", false)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Event blocked with the queue full")
	}
	if n := len(p.events); n != EventQueueLen {
		t.Fatalf("queue holds %d, want %d", n, EventQueueLen)
	}
}

func TestNewNeedsClientAndNode(t *testing.T) {
	if _, err := New(Options{Node: node}); err == nil {
		t.Error("New without a client")
	}
	if _, err := New(Options{Client: fake.NewClientset()}); err == nil {
		t.Error("New without a node")
	}
}

func TestConfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := Config(""); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("Config outside a cluster: %v, want ErrNoCredentials", err)
	}
	dir := t.TempDir()
	kc := dir + "/kubeconfig"
	writeFile(t, kc, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://192.0.2.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t0}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`)
	cfg, err := Config(kc)
	if err != nil || cfg.Host != "https://192.0.2.1:6443" || cfg.QPS != clientQPS || cfg.Timeout != 0 {
		t.Fatalf("Config(kubeconfig) = %+v, %v", cfg, err)
	}
	if _, err := Config(dir + "/missing"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Config of a missing file: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
