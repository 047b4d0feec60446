package impair

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/netem"
)

// Mechanisms, in the order Applied lists them.
const (
	MechNetem = "netem"
	MechTBF   = "tbf"
	MechBPF   = "bpf"
)

// Kernel is what a host's kernel offers for impairments, as Probe found.
type Kernel struct {
	// Netem: the netem qdisc (sch_netem).
	Netem bool
	// TBF: the tbf qdisc (sch_tbf).
	TBF bool
	// BPF: SchedCLS programs with impair's helpers, the clsact qdisc and
	// cls_bpf in direct-action mode.
	BPF bool
	// Why says, for each missing ability, what the probe saw.
	Why string
}

// String lists what the kernel has, e.g. "netem+tbf+bpf", "tbf+bpf".
func (k Kernel) String() string {
	var has []string
	if k.Netem {
		has = append(has, MechNetem)
	}
	if k.TBF {
		has = append(has, MechTBF)
	}
	if k.BPF {
		has = append(has, MechBPF)
	}
	if len(has) == 0 {
		return "none"
	}
	return strings.Join(has, "+")
}

// Applied says how a netem.Spec was applied on one link end (Apply, Plan), or
// what is on the interface (Inspect).
type Applied struct {
	// Mechanisms used, in the order netem, tbf, bpf.
	Mechanisms []string `json:"mechanisms,omitempty"`
	// NotApplied lists the netem.Spec fields (JSON names) the kernel cannot
	// apply, in netem.Spec order.
	NotApplied []string `json:"notApplied,omitempty"`
	// Reason says why NotApplied ones are not, e.g. "kernel has no
	// sch_netem".
	Reason string `json:"reason,omitempty"`
	// InForce are the values in force: for Apply and Plan the netem.Spec's less
	// those not applied, with rate in whole bytes per second as the kernel
	// keeps it; for Inspect, read back from the kernel.
	InForce netem.Params `json:"-"`
}

// String is e.g. "netem", "tbf+bpf", "bpf; not applied: delay: kernel has
// no sch_netem", "not applied: delay, jitter: kernel has no sch_netem", or
// "" when nothing is applied nor asked for.
func (a Applied) String() string {
	s := strings.Join(a.Mechanisms, "+")
	if len(a.NotApplied) == 0 {
		return s
	}
	na := "not applied: " + strings.Join(a.NotApplied, ", ")
	if a.Reason != "" {
		na += ": " + a.Reason
	}
	if s == "" {
		return na
	}
	return s + "; " + na
}

// Plan says what Apply does with s on a host with kernel k, without
// touching anything.
func Plan(s netem.Spec, k Kernel) (Applied, error) {
	p, err := s.Params()
	if err != nil {
		return Applied{}, err
	}
	return plan(p, k), nil
}

// plan is Plan on parsed values.
func plan(p netem.Params, k Kernel) Applied {
	p.Rate &^= 7 // the kernel keeps bytes per second
	if p.IsZero() {
		return Applied{}
	}
	if k.Netem {
		return Applied{Mechanisms: []string{MechNetem}, InForce: p}
	}
	var a Applied
	in := p
	missing := []string{"sch_netem"}
	notApplied := func(field string) { a.NotApplied = append(a.NotApplied, field) }
	if p.Delay > 0 {
		notApplied("delay")
		in.Delay = 0
	}
	if p.Jitter > 0 {
		notApplied("jitter")
		in.Jitter = 0
	}
	bpf := p.Loss > 0 || p.Corrupt > 0 || p.Duplicate > 0
	if bpf && !k.BPF {
		missing = append(missing, "tc BPF")
	}
	if p.Loss > 0 && !k.BPF {
		notApplied("loss")
		in.Loss = 0
	}
	if p.Rate > 0 {
		if k.TBF {
			a.Mechanisms = append(a.Mechanisms, MechTBF)
		} else {
			notApplied("rate")
			in.Rate = 0
			missing = append(missing, "sch_tbf")
		}
	}
	if !k.BPF {
		if p.Corrupt > 0 {
			notApplied("corrupt")
			in.Corrupt = 0
		}
		if p.Duplicate > 0 {
			notApplied("duplicate")
			in.Duplicate = 0
		}
	} else if bpf {
		a.Mechanisms = append(a.Mechanisms, MechBPF)
	}
	if p.Reorder > 0 {
		notApplied("reorder")
		in.Reorder = 0
	}
	if len(a.NotApplied) > 0 {
		a.Reason = "kernel has no " + strings.Join(missing, ", no ")
	}
	a.InForce = in
	return a
}

// Tolerances of Verify: what the kernel's units round away.
const (
	durationSlack    = 2000 // ns: netem keeps time in 64 ns ticks of whole µs
	probabilitySlack = 1e-7 // netem and impair's thresholds: 2⁻³² steps
)

// Diff lists how got (from Inspect) differs from want (from Plan):
// mechanisms and the values in force; nil when they agree. NotApplied and
// Reason are not compared: Inspect cannot know what was asked.
func Diff(want, got Applied) []string {
	var d []string
	if !slices.Equal(want.Mechanisms, got.Mechanisms) {
		d = append(d, fmt.Sprintf("mechanisms %q, want %q", strings.Join(got.Mechanisms, "+"), strings.Join(want.Mechanisms, "+")))
	}
	w, g := want.InForce, got.InForce
	durs := []struct {
		name     string
		want, is int64
	}{{"delay", int64(w.Delay), int64(g.Delay)}, {"jitter", int64(w.Jitter), int64(g.Jitter)}}
	for _, f := range durs {
		if f.want-f.is > durationSlack || f.is-f.want > durationSlack {
			d = append(d, fmt.Sprintf("%s %dns, want %dns", f.name, f.is, f.want))
		}
	}
	probs := []struct {
		name     string
		want, is float64
	}{{"loss", w.Loss, g.Loss}, {"corrupt", w.Corrupt, g.Corrupt}, {"duplicate", w.Duplicate, g.Duplicate}, {"reorder", w.Reorder, g.Reorder}}
	for _, f := range probs {
		if math.Abs(f.want-f.is) > probabilitySlack {
			d = append(d, fmt.Sprintf("%s %s, want %s", f.name, netem.FormatPercent(f.is), netem.FormatPercent(f.want)))
		}
	}
	if w.Rate/8 != g.Rate/8 {
		d = append(d, fmt.Sprintf("rate %dbit, want %dbit", g.Rate, w.Rate))
	}
	return d
}
