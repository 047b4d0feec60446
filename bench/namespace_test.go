package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// Sizes of the crowded namespace of (8).
const (
	crowdPods  = 10000
	crowdPairs = 8 // measured pairs per namespace
	// settle lets the agent finish the previous pair's events before the
	// next pair is timed, in either namespace.
	settle = 300 * time.Millisecond
)

// BenchmarkCrowdedNamespace measures (8): a same-host pair's first and
// second ADD in a namespace that holds 10,000 other pods against the same
// in an empty namespace, on the same host and agent, pairs of the two
// namespaces interleaved. The 10,000 others are what a large lab leaves in
// etcd: each announced (announcer's <prefix>/announce/<ns>/<pod>, in pairs
// declaring one link each), each with a pod record on another host, and
// their 5,000 links recorded wired; they are written straight into etcd.
func BenchmarkCrowdedNamespace(b *testing.B) {
	const crowded, empty = "crowded", "empty"
	for range b.N {
		c := testcluster.New(b, "v3", 1)
		h := c.Hosts[0]
		start := time.Now()
		populate(b, c, crowded, crowdPods)
		b.Logf("%d pods written into namespace %s in %v", crowdPods, crowded, time.Since(start).Round(time.Millisecond))
		// Not counted: the first ADD starts the host's agent, which then
		// lists everything.
		runPair(b, c, h, crowded, 99)
		runPair(b, c, h, empty, 99)
		first := map[string][]time.Duration{}
		second := map[string][]time.Duration{}
		for i := range crowdPairs {
			order := []string{empty, crowded}
			if i%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, ns := range order {
				time.Sleep(settle)
				f, s := runPair(b, c, h, ns, i)
				first[ns], second[ns] = append(first[ns], f), append(second[ns], s)
			}
		}
		for i, which := range []struct {
			name string
			ds   map[string][]time.Duration
		}{{"1st ADD", first}, {"2nd ADD (builds the veth)", second}} {
			me, pe := stats(which.ds[empty])
			mc, pc := stats(which.ds[crowded])
			r := float64(mc) / float64(me)
			record(row{Order: 80 + 2*i, Name: fmt.Sprintf("8. pair's %s, empty namespace", which.name), Median: ms(me), P95: ms(pe), N: crowdPairs})
			record(row{Order: 81 + 2*i, Name: fmt.Sprintf("8. pair's %s, 10,000 other pods in the namespace", which.name), Median: ms(mc), P95: ms(pc),
				Ratio: r, Target: "≤ 1.2×", Met: met(r <= 1.2), N: crowdPairs})
		}
		ctx := context.Background()
		for _, dir := range []string{c.Keys.Pods(crowded), c.Keys.Links(crowded), c.Keys.Announces(crowded)} {
			if err := c.KV.DeleteDir(ctx, dir); err != nil {
				b.Fatal(err)
			}
		}
		c.AssertNothingLeft()
	}
}

// runPair announces pair i of namespace ns (a declares p0 towards z), adds
// a then z on host h (z's ADD builds the veth), checks the link is up,
// deletes both and their announcements, and returns the two ADDs' times.
func runPair(b *testing.B, c *testcluster.Cluster, h *testcluster.Host, ns string, i int) (first, second time.Duration) {
	b.Helper()
	an, zn := fmt.Sprintf("a%d", i), fmt.Sprintf("z%d", i)
	c.Announce(&metadata.Pod{Namespace: ns, Name: an, Links: []metadata.Link{{Peer: zn, IfName: "p0",
		IP: fmt.Sprintf("10.70.%d.1/30", i), PeerIfName: "p0", PeerIP: fmt.Sprintf("10.70.%d.2/30", i)}}})
	c.Announce(&metadata.Pod{Namespace: ns, Name: zn})
	a, z := podIn(h, ns, an), podIn(h, ns, zn)
	start := time.Now()
	a.MustAdd()
	first = time.Since(start)
	start = time.Now()
	z.MustAdd()
	second = time.Since(start)
	if !linkIsUp(a.Netns, "p0") || !linkIsUp(z.Netns, "p0") {
		b.Fatalf("namespace %s: pair %d not wired when the second ADD returned\n%s", ns, i, h.LogTail())
	}
	a.MustDel()
	z.MustDel()
	for _, name := range []string{an, zn} {
		if err := c.KV.Delete(context.Background(), c.Keys.Announce(ns, name), 0); err != nil {
			b.Fatal(err)
		}
	}
	return first, second
}

// podIn is h.NewPod in Kubernetes namespace ns.
func podIn(h *testcluster.Host, ns, name string) *testcluster.Pod {
	p := h.NewPod(name)
	for i, kv := range p.RT.Args {
		if kv[0] == "K8S_POD_NAMESPACE" {
			p.RT.Args[i][1] = ns
		}
	}
	return p
}

// populate writes n fake pods into namespace ns, in pairs f<2k> → f<2k+1>
// declaring one link each: their announced records, pod records on a host
// that does not exist, and their links recorded wired. It writes with 32
// requests in flight.
func populate(b *testing.B, c *testcluster.Cluster, ns string, n int) {
	b.Helper()
	host := testenv.UniqueName("ghost-")
	now := time.Now().UTC()
	type kv struct {
		key string
		val any
	}
	work := make(chan kv)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range work {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := store.PutJSON(ctx, c.KV, w.key, w.val)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", w.key, err)
					return
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for i := 0; i+1 < n; i += 2 {
			an, zn := fmt.Sprintf("f%05d", i), fmt.Sprintf("f%05d", i+1)
			ip := func(end int) string { return fmt.Sprintf("10.%d.%d.%d/30", 128+i/16384, (i/64)%256, (i%64)*2+end) }
			link := metadata.Link{Peer: zn, IfName: "in1", IP: ip(1), PeerIfName: "in1", PeerIP: ip(2)}
			pa := metadata.Pod{Namespace: ns, Name: an, Links: []metadata.Link{link}}
			pz := metadata.Pod{Namespace: ns, Name: zn}
			rec := store.LinkRecord{ID: store.LinkID(an, "in1", zn, "in1"), Namespace: ns, State: store.LinkWired, Declarer: an, Updated: now,
				A: store.LinkEnd{Pod: an, IfName: "in1", IP: ip(1), ContainerID: "ghost" + an, Host: host, Up: true},
				B: store.LinkEnd{Pod: zn, IfName: "in1", IP: ip(2), ContainerID: "ghost" + zn, Host: host, Up: true}}
			items := []kv{
				{c.Keys.Announce(ns, an), metadata.Labels(&pa)},
				{c.Keys.Announce(ns, zn), metadata.Labels(&pz)},
				{c.Keys.Pod(ns, an), ghostPod(pa, host, now)},
				{c.Keys.Pod(ns, zn), ghostPod(pz, host, now)},
				{c.Keys.Link(ns, rec.ID), rec},
			}
			for _, it := range items {
				select {
				case work <- it:
				case err := <-errs:
					errs <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// ghostPod is the pod record of a pod on a host that does not exist.
func ghostPod(p metadata.Pod, host string, now time.Time) store.PodRecord {
	return store.PodRecord{Namespace: p.Namespace, Name: p.Name, ContainerID: "ghost" + p.Name, Netns: "/var/run/netns/" + host + "-" + p.Name,
		IfName: "eth0", Host: host, HostAddress: "203.0.113.250", Pod: p, Created: now}
}
