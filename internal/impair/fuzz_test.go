package impair

import (
	"errors"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/netem"
)

// FuzzSpec feeds arbitrary field values to Validate and netem.Params: no panic,
// both agree, accepted values lie within the documented limits, and the
// planning and tc construction built on them do not panic either.
func FuzzSpec(f *testing.F) {
	f.Add("20ms", "5ms", "0.5%", "100mbit", "0.1%", "1%", "25%")
	f.Add("", "", "100%", "8bit", "", "", "")
	f.Add("60s", "1.5ms", "0.0001%", "12.5gbps", "100%", "0%", "")
	f.Add("250µs", "", "", "0.1tbit", "", "", "")
	f.Add("1h", "-1ms", "NaN%", "1e9bit", "%", "101%", "x")
	f.Fuzz(func(t *testing.T, delay, jitter, loss, rate, corrupt, duplicate, reorder string) {
		s := netem.Spec{Delay: delay, Jitter: jitter, Loss: loss, Rate: rate, Corrupt: corrupt, Duplicate: duplicate, Reorder: reorder}
		verr := s.Validate()
		p, perr := s.Params()
		if (verr == nil) != (perr == nil) {
			t.Fatalf("Validate = %v but netem.Params = %v", verr, perr)
		}
		if verr != nil {
			if !errors.Is(verr, netem.ErrInvalid) {
				t.Fatalf("error %v does not match netem.ErrInvalid", verr)
			}
			if p != (netem.Params{}) {
				t.Fatalf("Params returned %+v with an error", p)
			}
			return
		}
		for _, v := range []string{delay, jitter, loss, rate, corrupt, duplicate, reorder} {
			if len(v) > netem.MaxFieldLen {
				t.Fatalf("accepted a %d-byte value", len(v))
			}
		}
		if p.Delay < 0 || p.Delay > netem.MaxDelay || p.Jitter < 0 || p.Jitter > netem.MaxDelay {
			t.Fatalf("duration out of range: %+v", p)
		}
		if p.Jitter > 0 && p.Delay == 0 || p.Reorder > 0 && p.Delay == 0 {
			t.Fatalf("jitter or reorder without delay: %+v", p)
		}
		for _, pr := range []float64{p.Loss, p.Corrupt, p.Duplicate, p.Reorder} {
			if !(pr >= 0 && pr <= 1) {
				t.Fatalf("probability out of range: %+v", p)
			}
		}
		if p.Rate != 0 && (p.Rate < netem.MinRate || p.Rate > netem.MaxRate) {
			t.Fatalf("rate out of range: %+v", p)
		}
		if rate != "" && p.Rate == 0 {
			t.Fatalf("rate %q parsed to 0", rate)
		}
		for _, k := range []Kernel{{Netem: true, TBF: true, BPF: true}, {TBF: true, BPF: true}, {}} {
			a := plan(p, k)
			_ = a.String()
			if d := Diff(a, a); d != nil {
				t.Fatalf("Diff of a plan with itself: %q", d)
			}
		}
		_ = p.String()
		_ = netemQdisc(1, p)
		if p.Rate > 0 {
			c := newTBFConfig(p.Rate, 1500, 15.625)
			if c.Rate == 0 || c.Burst < 1518 || c.Limit < c.Burst {
				t.Fatalf("tbf config %+v for rate %d", c, p.Rate)
			}
			_ = c.request(1).Serialize()
		}
		_ = newThresholds(p)
	})
}
