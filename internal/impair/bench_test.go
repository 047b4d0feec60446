package impair

import (
	"context"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"
)

// BenchmarkApply measures one Apply that changes a link end's impairment
// (alternating loss and loss+rate: a new BPF program, the root qdisc
// added or removed), what the agent does when a link's netem changes.
func BenchmarkApply(b *testing.B) {
	if testing.Short() {
		b.Skip("kernel benchmark")
	}
	k, err := probed()
	if err != nil {
		b.Fatal(err)
	}
	w := newWire(b)
	specs := []netem.Spec{{Loss: "1%"}, {Loss: "2%", Rate: "100mbit"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := Apply(ctx, w.a.Path(), w.ifA, specs[i%2], k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProbe measures Probe, which the agent runs once at start.
func BenchmarkProbe(b *testing.B) {
	if testing.Short() {
		b.Skip("kernel benchmark")
	}
	for b.Loop() {
		if _, err := Probe(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
