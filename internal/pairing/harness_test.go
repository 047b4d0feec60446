package pairing

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/memstore"
)

// harness runs the pairing state machine without root: an in-memory store
// with etcd's CAS semantics, a fake kernel, fixed labels, and each host's
// agent loop (Follower) as a goroutine.
type harness struct {
	t    *testing.T
	kv   *memstore.Store
	wire *fakeWire
	src  *labelSource
	dir  string
	keys store.Keys
	// wg waits for the hosts' followers at the end.
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	agents map[string]*Manager
	// pairTimeout of every host's netconf.
	pairTimeout string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h := &harness{t: t, kv: memstore.New("/ratchet"), wire: newFakeWire(), dir: t.TempDir(),
		src: &labelSource{labels: map[string]map[string]string{}}, keys: store.Keys{Prefix: "/ratchet"},
		ctx: ctx, cancel: cancel, agents: map[string]*Manager{}, pairTimeout: "20s"}
	t.Cleanup(func() {
		cancel()
		h.wg.Wait()
		_ = h.kv.Close()
	})
	return h
}

// hostAddr is the underlay address of a simulated host.
func hostAddr(host string) string {
	return map[string]string{"h1": "192.0.2.1", "h2": "192.0.2.2", "h3": "192.0.2.3"}[host]
}

// manager is a Manager of host, as a plugin invocation there builds it,
// with the harness's label source.
func (h *harness) manager(host string) *Manager {
	h.t.Helper()
	h.mu.Lock()
	m := h.agents[host]
	h.mu.Unlock()
	if m == nil {
		m = h.managerWith(host, []metadata.Source{h.src})
	}
	return m
}

// managerWith is manager with the given sources (nil: the netconf's);
// setup runs on the Manager before its agent loop starts.
func (h *harness) managerWith(host string, sources []metadata.Source, setup ...func(*Manager)) *Manager {
	h.t.Helper()
	raw := map[string]any{"cniVersion": "1.0.0", "name": "net", "type": "ratchet",
		"delegates": []any{map[string]any{"type": "bridge"}, map[string]any{"type": "ptp"}},
		"host":      map[string]any{"name": host, "address": hostAddr(host)},
		"cniDir":    h.dir + "/" + host, "pairTimeout": h.pairTimeout, "metadata": []string{"docker", "etcd"},
		"docker": map[string]any{"host": "unix://" + h.dir + "/no-docker.sock"}}
	data, _ := json.Marshal(raw)
	conf, err := config.Load(data)
	if err != nil {
		h.t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{h.t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := New(conf, log, Deps{Store: h.kv, Wirer: h.wire, Sources: sources})
	for _, fn := range setup {
		fn(m)
	}
	if sources != nil {
		h.startAgent(host, m)
	}
	return m
}

// startAgent makes m the agent of host, as ratchetd: its loop runs, and
// the host's ADDs and DELs go through it.
func (h *harness) startAgent(host string, m *Manager) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.agents[host] != nil {
		return
	}
	h.agents[host] = m
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = m.NewFollower().Run(h.ctx)
	}()
}

// pod is a pod sandbox of the tests.
type pod struct {
	host, id, netns string
	labels          map[string]string
	// args is CNI_ARGS (the Kubernetes pod's name and namespace).
	args string
}

// newPod makes a sandbox on host with labels (nil: not a ratchet pod).
func (h *harness) newPod(host, id string, labels map[string]string) *pod {
	p := &pod{host: host, id: id, netns: h.wire.netns(h.dir, id), labels: labels}
	if labels != nil {
		h.src.set(id, labels)
	}
	return p
}

func (h *harness) request(p *pod) *Request {
	return &Request{ContainerID: p.id, NetNS: p.netns, IfName: "eth0", Reserved: []string{"eth0", "net1"}, Args: p.args}
}

// add runs ADD's pairing for p on its host, prepared as the plugin does.
func (h *harness) add(p *pod) error {
	m := h.manager(p.host)
	defer m.Close()
	req := h.request(p)
	prep := m.Prepare(h.ctx, req)
	defer prep.Wait()
	return m.Add(h.ctx, req, prep)
}

// del runs DEL's pairing for p on its host.
func (h *harness) del(p *pod) error {
	m := h.manager(p.host)
	defer m.Close()
	return m.Del(h.ctx, h.request(p))
}

// check runs CHECK's pairing for p on its host.
func (h *harness) check(p *pod) error {
	m := h.manager(p.host)
	defer m.Close()
	return m.Check(h.ctx, h.request(p))
}

// link reads a link's record ("" state when absent).
func (h *harness) link(a, ifA, b, ifB string) store.LinkRecord {
	rec, _, err := store.GetLink(h.ctx, h.kv, h.keys, "default", store.LinkID(a, ifA, b, ifB))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.t.Fatalf("read link: %v", err)
	}
	return rec
}

// waitState waits until a link is in state (bounded).
func (h *harness) waitState(a, ifA, b, ifB string, state store.LinkState) store.LinkRecord {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec := h.link(a, ifA, b, ifB)
		if rec.State == state {
			return rec
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("link %s.%s--%s.%s is %q (%s), want %q", a, ifA, b, ifB, rec.State, rec.Reason, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leftovers lists the records under the prefix.
func (h *harness) records() []string {
	kvs, _, err := h.kv.List(context.Background(), "/ratchet")
	if err != nil {
		h.t.Fatal(err)
	}
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	return keys
}

// labels of a pod that declares links (ratchet.links) or expects nothing.
func declaring(name string, links ...metadata.Link) map[string]string {
	l := map[string]string{metadata.KeyRatchet: "true", metadata.KeyPodName: name}
	if len(links) > 0 {
		data, _ := json.Marshal(links)
		l[metadata.KeyLinks] = string(data)
	}
	return l
}

// seedPods makes the seed's primary pod on hostP and pair pod on hostQ.
func (h *harness) seedPods(hostP, hostQ string) (p, q *pod) {
	pl, ql := seedLabels()
	return h.newPod(hostP, "c-primary", pl), h.newPod(hostQ, "c-pair", ql)
}

// seedLabels are the seed's label files: primary declares in1 → pair's in2;
// pair only waits for it.
func seedLabels() (primary, pair map[string]string) {
	read := func(name string) map[string]string {
		l, err := metadata.ReadLabelFile(filepath.Join("..", "..", "scripts", name))
		if err != nil {
			panic(err)
		}
		return l
	}
	return read("primary.label"), read("pair.label")
}

// testWriter sends logs to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}
