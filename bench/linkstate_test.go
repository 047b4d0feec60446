package bench

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/impair"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// linkStateRounds is how many changes (11) and (12) time.
const linkStateRounds = 20

// BenchmarkLinkStateChanges measures (11) and (12) on a wired cross-host
// link: an impairment written to the link's record (as `ratchetctl link
// set` writes it) until it is in force in the kernel on both hosts, and
// the link set down until the far host's end has lost carrier. Each round
// changes the loss, so every write is a real change.
func BenchmarkLinkStateChanges(b *testing.B) {
	for range b.N {
		c := testcluster.New(b, "v3", 2)
		c.Announce(&metadata.Pod{Name: "ia", Links: []metadata.Link{{Peer: "ib", IfName: "i1", IP: "192.0.2.1/30", PeerIfName: "i1", PeerIP: "192.0.2.2/30"}}})
		c.Announce(&metadata.Pod{Name: "ib"})
		a, bp := c.Hosts[0].NewPod("ia"), c.Hosts[1].NewPod("ib")
		a.MustAdd()
		bp.MustAdd()
		id := store.LinkID("ia", "i1", "ib", "i1")
		if !testcluster.WaitFor(10*time.Second, func() bool { return c.Link("ia", "i1", "ib", "i1").State == store.LinkWired }) {
			b.Fatal("link never wired")
		}
		ctx := context.Background()
		set := func(change func(*store.LinkRecord)) time.Time {
			start := time.Now()
			_, _, err := store.Update(ctx, c.KV, c.Keys.Link("default", id), func(r *store.LinkRecord) error {
				change(r)
				r.NetemSet = true
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			return start
		}
		inForce := func(p *testcluster.Pod, loss float64) bool {
			got, err := impair.Inspect(ctx, p.Netns, "i1")
			return err == nil && math.Abs(got.InForce.Loss-loss) < 1e-6
		}
		var applied, carrier []time.Duration
		for i := range linkStateRounds {
			pct := 1 + i%5
			loss := float64(pct) / 100
			start := set(func(r *store.LinkRecord) {
				spec := &netem.Spec{Loss: fmt.Sprintf("%d%%", pct)}
				r.A.Netem, r.B.Netem = spec, spec
			})
			if !waitFast(5*time.Second, func() bool { return inForce(a, loss) && inForce(bp, loss) }) {
				b.Fatalf("round %d: loss %d%% not in force on both hosts within 5 s", i, pct)
			}
			applied = append(applied, time.Since(start))
			start = set(func(r *store.LinkRecord) { r.Admin = store.AdminDown })
			if !waitFast(5*time.Second, func() bool {
				info, err := wiring.Lookup(ctx, bp.Netns, "i1")
				return err == nil && !info.OperUp
			}) {
				b.Fatalf("round %d: the far end kept carrier 5 s after link down", i)
			}
			carrier = append(carrier, time.Since(start))
			set(func(r *store.LinkRecord) { r.Admin = store.AdminUp })
			if !waitFast(5*time.Second, func() bool {
				info, err := wiring.Lookup(ctx, bp.Netns, "i1")
				return err == nil && info.OperUp
			}) {
				b.Fatalf("round %d: the far end without carrier 5 s after link up", i)
			}
		}
		m, p95 := stats(applied)
		record(row{Order: 110, Name: "11. impairment changed in the record → in force on both hosts", Median: ms(m), P95: ms(p95),
			Target: "≤ 200 ms", Met: met(m <= 200*time.Millisecond && p95 <= 200*time.Millisecond), N: len(applied)})
		m, p95 = stats(carrier)
		record(row{Order: 120, Name: "12. link set down → carrier lost on the far host", Median: ms(m), P95: ms(p95),
			Target: "≤ 200 ms", Met: met(m <= 200*time.Millisecond && p95 <= 200*time.Millisecond), N: len(carrier)})
		a.MustDel()
		bp.MustDel()
		c.AssertNothingLeft()
	}
}

// waitFast polls cond every millisecond for at most d.
func waitFast(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}
