// Package kubemeta is the agent's watch of the pods of its node in
// Kubernetes: a pod informer limited to spec.nodeName, whose cache keeps of
// each pod only what ratchet reads (namespace, name, UID and the ratchet
// keys of its labels and annotations), and a bounded queue of the Events
// the agent records on pods. It is linked into ratchetd only, never into
// the plugin.
package kubemeta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/ratchet-cni/ratchet/internal/metadata"
)

// Limits of what the watch keeps, so that a pod cannot make the agent hold
// unbounded memory. The API server bounds a pod's annotations to 256 KiB
// in all and label values to 63 bytes, so on a conforming cluster these
// only ever apply to pods metadata.Parse rejects anyway.
const (
	// MaxValueLen bounds each kept value, in bytes: one more than the
	// largest value metadata.Parse accepts for any key (ratchet.links), so
	// that a longer value is kept cut to this length and Parse still
	// rejects it, naming the key (the size it reports is then the kept
	// one). Values within the limit are kept whole.
	MaxValueLen = metadata.MaxLinksLen + 1
	// MaxPodBytes bounds the ratchet keys and values kept of one pod, in
	// bytes. Keys are taken in sorted order ("ratchet" first); a key that
	// would pass the budget is left out and a warning names the pod.
	MaxPodBytes = 1 << 20
	// EventQueueLen bounds the Events waiting to be sent; Event drops
	// what does not fit.
	EventQueueLen = 256
	// EventTimeout bounds the sending of one Event.
	EventTimeout = 5 * time.Second
	// MaxEventMessageLen bounds an Event's message, in bytes (what
	// client-go's recorder keeps too).
	MaxEventMessageLen = 1024
	// Component is the Events' source component.
	Component = "ratchetd"
)

// Options configure a Pods.
type Options struct {
	// Client is the Kubernetes API client.
	Client kubernetes.Interface
	// Node is the node whose pods are watched (the agent's host name).
	Node string
	// APIHost names the API server in errors ("kubernetes API at <host>").
	APIHost string
	// Log receives the watch's logs; nil discards them.
	Log *slog.Logger
}

// Pods watches the pods of one node. Build it with New, run it with Start
// and stop it with Close. Its methods may be called concurrently, also
// before Start (they then answer from the API alone).
type Pods struct {
	client   kubernetes.Interface
	node     string
	apiHost  string
	log      *slog.Logger
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer

	mu      sync.Mutex
	subs    map[uint64]func(ns, name string)
	nextSub uint64
	pending map[string]struct{} // ns/name keys whose subscribers are due
	wake    chan struct{}       // one slot: pending has work
	events  chan *corev1.Event

	startOnce sync.Once
	closeOnce sync.Once
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// New builds the watch of the pods of o.Node; nothing runs until Start.
func New(o Options) (*Pods, error) {
	if o.Client == nil {
		return nil, errors.New("kubemeta: no Kubernetes client")
	}
	if o.Node == "" {
		return nil, errors.New("kubemeta: no node name")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	p := &Pods{
		client:  o.Client,
		node:    o.Node,
		apiHost: o.APIHost,
		log:     o.Log.With("node", o.Node),
		subs:    map[uint64]func(string, string){},
		pending: map[string]struct{}{},
		wake:    make(chan struct{}, 1),
		events:  make(chan *corev1.Event, EventQueueLen),
	}
	if p.apiHost == "" {
		p.apiHost = "(unknown)"
	}
	selector := fields.OneTermEqualSelector("spec.nodeName", o.Node).String()
	p.factory = informers.NewSharedInformerFactoryWithOptions(o.Client, 0,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.FieldSelector = selector }))
	p.informer = p.factory.Core().V1().Pods().Informer()
	if err := p.informer.SetTransform(p.strip); err != nil {
		return nil, fmt.Errorf("kubemeta: pod informer: %w", err)
	}
	if _, err := p.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.changed(obj) },
		DeleteFunc: func(obj any) { p.changed(obj) },
		UpdateFunc: func(old, cur any) {
			if !maps.Equal(ratchetKeys(old), ratchetKeys(cur)) {
				p.changed(cur)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("kubemeta: pod informer: %w", err)
	}
	return p, nil
}

// NewForConfig builds the watch of node's pods with a client of cfg.
func NewForConfig(cfg *rest.Config, node string, log *slog.Logger) (*Pods, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubemeta: client of %s: %w", cfg.Host, err)
	}
	return New(Options{Client: client, Node: node, APIHost: cfg.Host, Log: log})
}

// Start runs the informer and the Event and subscriber workers until ctx
// ends or Close is called. It returns at once; WaitSynced waits for the
// first list. A second Start does nothing.
func (p *Pods) Start(ctx context.Context) {
	p.startOnce.Do(func() {
		ctx, p.stop = context.WithCancel(ctx)
		p.factory.Start(ctx.Done())
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.sendEvents(ctx) }()
		go func() { defer p.wg.Done(); p.notify(ctx) }()
		p.log.Info("watching the node's pods", "api", p.apiHost)
	})
}

// WaitSynced waits until the informer has listed the node's pods, or ctx
// ends; it reports whether it has.
func (p *Pods) WaitSynced(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), p.informer.HasSynced)
}

// Close stops the watch and its workers and waits for them; queued Events
// not sent yet are dropped. Close without Start, or a second Close, is
// harmless.
func (p *Pods) Close() {
	p.closeOnce.Do(func() {
		p.startOnce.Do(func() {}) // a later Start does nothing
		if p.stop != nil {
			p.stop()
		}
		p.factory.Shutdown()
		p.wg.Wait()
	})
}

// Labels returns the ratchet keys of pod ns/name, its annotations overlaid
// on its labels: from the watch, else from one GET within ctx.
func (p *Pods) Labels(ctx context.Context, ns, name string) (map[string]string, error) {
	if l, ok := p.cachedPod(ns, name); ok {
		return nonEmpty(ns, name, l)
	}
	if err := validPodName(ns, name); err != nil {
		return nil, fmt.Errorf("kubernetes: pod %s/%s: %w: %w", clip(ns), clip(name), metadata.ErrNoMetadata, err)
	}
	pod, err := p.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("kubernetes: pod %s/%s not found: %w", ns, name, metadata.ErrNoMetadata)
	case err != nil:
		return nil, metadata.Unavailable("kubernetes API at "+p.apiHost, fmt.Errorf("get pod %s/%s: %w", ns, name, err))
	}
	return nonEmpty(ns, name, p.keep(pod))
}

// Cached returns the ratchet keys of pod ns/name from the watch alone; ok
// is false when the watch holds no such pod.
func (p *Pods) Cached(ns, name string) (map[string]string, bool) {
	return p.cachedPod(ns, name)
}

// Subscribe calls fn(ns, name) after a pod of the node appears, goes, or
// changes its ratchet keys. fn runs on the watch's own goroutine, never on
// the informer's: a slow fn delays other notifications, not the watch.
// Notifications of one pod that pile up while fn runs are merged into one.
func (p *Pods) Subscribe(fn func(ns, name string)) (cancel func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := p.nextSub
	p.nextSub++
	p.subs[id] = fn
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.subs, id)
	}
}

// Event queues a Kubernetes Event on pod ns/name, type Normal or Warning
// when warn, naming the pod by its UID when the watch knows it. It never
// waits: when EventQueueLen Events are already waiting, it drops this one
// (logged at debug).
//
// The Events are created with a plain Create rather than client-go's
// record.EventBroadcaster: ratchet's Events are few (a link wired, failed,
// removed), so the broadcaster's aggregation buys little, and it would need
// the patch verb too and hide its own queue and drop policy. Here the
// queue, the deadline and the RBAC (create) are explicit.
func (p *Pods) Event(ns, name, reason, message string, warn bool) {
	typ := corev1.EventTypeNormal
	if warn {
		typ = corev1.EventTypeWarning
	}
	now := metav1.Now()
	ref := corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: name}
	if obj, ok, _ := p.informer.GetStore().GetByKey(ns + "/" + name); ok {
		ref.UID = obj.(*corev1.Pod).UID
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// As client-go's recorder names them: unique per pod and time.
			Name:      fmt.Sprintf("%s.%x", name, now.UnixNano()),
			Namespace: ns,
		},
		InvolvedObject: ref,
		Reason:         reason,
		Message:        metadata.Clip(message, MaxEventMessageLen),
		Type:           typ,
		Source:         corev1.EventSource{Component: Component, Host: p.node},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	select {
	case p.events <- ev:
	default:
		p.log.Debug("event queue full, event dropped", "pod", ns+"/"+name, "reason", reason)
	}
}

// sendEvents creates the queued Events, each within EventTimeout.
func (p *Pods) sendEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-p.events:
			cctx, cancel := context.WithTimeout(ctx, EventTimeout)
			_, err := p.client.CoreV1().Events(ev.Namespace).Create(cctx, ev, metav1.CreateOptions{})
			cancel()
			if err != nil && ctx.Err() == nil {
				p.log.Debug("event not recorded", "pod", ev.Namespace+"/"+ev.InvolvedObject.Name,
					"reason", ev.Reason, "error", err)
			}
		}
	}
}

// changed marks the pod of an informer notification as due for the
// subscribers; it never blocks.
func (p *Pods) changed(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	p.mu.Lock()
	p.pending[pod.Namespace+"/"+pod.Name] = struct{}{}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// notify calls the subscribers for the pending pods.
func (p *Pods) notify(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		p.mu.Lock()
		due := p.pending
		p.pending = map[string]struct{}{}
		fns := slices.Collect(maps.Values(p.subs))
		p.mu.Unlock()
		for key := range due {
			ns, name, _ := strings.Cut(key, "/")
			for _, fn := range fns {
				fn(ns, name)
			}
		}
	}
}

// cachedPod is the ratchet keys of a pod in the informer's cache (a copy).
func (p *Pods) cachedPod(ns, name string) (map[string]string, bool) {
	obj, ok, err := p.informer.GetStore().GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	return maps.Clone(obj.(*corev1.Pod).Annotations), true
}

// strip is the informer's transform: it keeps of a pod its identity and its
// ratchet keys (labels overlaid by annotations, in Annotations), so that
// the cache holds nothing else.
func (p *Pods) strip(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a DeletedFinalStateUnknown: its Obj was stripped already
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
		Annotations:     p.keep(pod),
	}}, nil
}

// keep returns the ratchet keys of pod within the limits: its labels,
// overlaid by its annotations.
func (p *Pods) keep(pod *corev1.Pod) map[string]string {
	all := map[string]string{}
	for _, m := range []map[string]string{pod.Labels, pod.Annotations} {
		for k, v := range m {
			if isRatchetKey(k) {
				all[k] = v
			}
		}
	}
	out := make(map[string]string, len(all))
	budget := MaxPodBytes
	var dropped []string
	for _, k := range slices.Sorted(maps.Keys(all)) {
		v := all[k]
		if len(v) > MaxValueLen {
			v = v[:MaxValueLen]
		}
		if len(k)+len(v) > budget {
			dropped = append(dropped, k)
			continue
		}
		budget -= len(k) + len(v)
		out[k] = v
	}
	if len(dropped) > 0 {
		p.log.Warn("pod's ratchet keys exceed the watch's limit: keys left out",
			"pod", pod.Namespace+"/"+pod.Name, "limit", MaxPodBytes, "keys", dropped)
	}
	return out
}

// ratchetKeys is the ratchet keys of a stripped pod from the informer.
func ratchetKeys(obj any) map[string]string {
	if pod, ok := obj.(*corev1.Pod); ok {
		return pod.Annotations
	}
	return nil
}

// isRatchetKey reports whether k is "ratchet" or "ratchet.*".
func isRatchetKey(k string) bool {
	return k == "ratchet" || strings.HasPrefix(k, "ratchet.")
}

// nonEmpty returns l, or an error matching metadata.ErrNoMetadata when it
// holds no ratchet key.
func nonEmpty(ns, name string, l map[string]string) (map[string]string, error) {
	if len(l) == 0 {
		return nil, fmt.Errorf("kubernetes: pod %s/%s has no ratchet labels or annotations: %w", ns, name, metadata.ErrNoMetadata)
	}
	return l, nil
}

// validPodName checks ns and name against Kubernetes' naming rules, so that
// nothing else reaches the API's URL.
func validPodName(ns, name string) error {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("namespace: %s", strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("name: %s", strings.Join(errs, "; "))
	}
	return nil
}

// clip shortens a name that failed validation for an error message.
func clip(s string) string { return metadata.Clip(s, 80) }
