package impair

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/netem"
)

// every value Validate accepts at the edges of the limits is
// applied by the kernel and reads back as planned (8bit, 100gbit, 1.5bit
// rounded, the smallest and largest percentages, a mix).
func TestEdgeValuesApplyAndVerify(t *testing.T) {
	requireKernelTests(t)
	k := kernel(t)
	w := newWire(t)
	ctx := testCtx(t)
	for _, s := range []netem.Spec{
		{Rate: "8bit"}, {Rate: "100gbit"}, {Rate: "12500mbps"}, {Rate: "34gbit"}, {Rate: "35gbit"},
		{Loss: "0.0001%"}, {Loss: "99.9999%"}, {Corrupt: "100%", Duplicate: "100%", Loss: "100%"},
		{Rate: "1kbit", Loss: "50%", Delay: "60s", Jitter: "60s", Reorder: "100%"},
	} {
		a, err := Apply(ctx, w.a.Path(), w.ifA, s, k)
		if err != nil {
			t.Errorf("Apply(%+v): %v", s, err)
			continue
		}
		if err := Verify(ctx, w.a.Path(), w.ifA, s, k); err != nil {
			t.Errorf("Verify(%+v) after Apply (%+v): %v", s, a, err)
		}
	}
	if err := Clear(ctx, w.a.Path(), w.ifA); err != nil {
		t.Fatal(err)
	}
}
