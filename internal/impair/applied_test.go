package impair

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"
)

var (
	kernelAll     = Kernel{Netem: true, TBF: true, BPF: true}
	kernelNoNetem = Kernel{TBF: true, BPF: true}
	kernelNone    = Kernel{}
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name   string
		spec   netem.Spec
		kernel Kernel
		want   string
		mechs  []string
		notApp []string
	}{
		{"nothing", netem.Spec{}, kernelAll, "", nil, nil},
		{"all zero values", netem.Spec{Loss: "0%", Delay: "0ms"}, kernelNoNetem, "", nil, nil},
		{"netem carries all", netem.Spec{Delay: "20ms", Loss: "1%", Rate: "1mbit"}, kernelAll, "netem", []string{"netem"}, nil},
		{"netem carries rate alone", netem.Spec{Rate: "1mbit"}, kernelAll, "netem", []string{"netem"}, nil},
		{"tbf", netem.Spec{Rate: "1mbit"}, kernelNoNetem, "tbf", []string{"tbf"}, nil},
		{"bpf", netem.Spec{Loss: "1%", Corrupt: "1%", Duplicate: "1%"}, kernelNoNetem, "bpf", []string{"bpf"}, nil},
		{"tbf+bpf", netem.Spec{Loss: "1%", Rate: "10mbit"}, kernelNoNetem, "tbf+bpf", []string{"tbf", "bpf"}, nil},
		{"delay, jitter not applied", netem.Spec{Delay: "20ms", Jitter: "5ms"}, kernelNoNetem,
			"not applied: delay, jitter: kernel has no sch_netem", nil, []string{"delay", "jitter"}},
		{"partly applied", netem.Spec{Delay: "20ms", Loss: "1%", Rate: "1mbit"}, kernelNoNetem,
			"tbf+bpf; not applied: delay: kernel has no sch_netem", []string{"tbf", "bpf"}, []string{"delay"}},
		{"reorder not applied", netem.Spec{Delay: "20ms", Reorder: "5%", Duplicate: "1%"}, kernelNoNetem,
			"bpf; not applied: delay, reorder: kernel has no sch_netem", []string{"bpf"}, []string{"delay", "reorder"}},
		{"bare kernel", netem.Spec{Delay: "1ms", Jitter: "1ms", Loss: "1%", Rate: "1mbit", Corrupt: "1%", Duplicate: "1%", Reorder: "1%"}, kernelNone,
			"not applied: delay, jitter, loss, rate, corrupt, duplicate, reorder: kernel has no sch_netem, no tc BPF, no sch_tbf", nil,
			[]string{"delay", "jitter", "loss", "rate", "corrupt", "duplicate", "reorder"}},
		{"no tbf", netem.Spec{Rate: "1mbit", Loss: "1%"}, Kernel{BPF: true}, "bpf; not applied: rate: kernel has no sch_netem, no sch_tbf", []string{"bpf"}, []string{"rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Plan(tt.spec, tt.kernel)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if !slices.Equal(a.Mechanisms, tt.mechs) {
				t.Errorf("Mechanisms = %q, want %q", a.Mechanisms, tt.mechs)
			}
			if !slices.Equal(a.NotApplied, tt.notApp) {
				t.Errorf("NotApplied = %q, want %q", a.NotApplied, tt.notApp)
			}
			for _, f := range a.NotApplied {
				if strings.Contains(a.InForce.String(), f+" ") {
					t.Errorf("InForce %q carries %s, which is not applied", a.InForce, f)
				}
			}
		})
	}
}

func TestPlanRejectsInvalid(t *testing.T) {
	if _, err := Plan(netem.Spec{Loss: "x"}, kernelAll); err == nil {
		t.Error("Plan accepted an invalid netem.Spec")
	}
}

func TestPlanKeepsRateInBytes(t *testing.T) {
	a, err := Plan(netem.Spec{Rate: "1001bit"}, kernelNoNetem)
	if err != nil {
		t.Fatal(err)
	}
	if a.InForce.Rate != 1000 {
		t.Errorf("InForce.Rate = %d, want 1000 (whole bytes per second)", a.InForce.Rate)
	}
}

func TestDiff(t *testing.T) {
	want := Applied{Mechanisms: []string{"tbf", "bpf"}, InForce: netem.Params{Loss: 0.3, Rate: 1_000_000}}
	if d := Diff(want, want); d != nil {
		t.Errorf("Diff of equal = %q", d)
	}
	close := want
	close.InForce.Loss = 0.3 + 1e-9
	close.InForce.Rate = 1_000_007 // same bytes per second
	if d := Diff(want, close); d != nil {
		t.Errorf("Diff within the kernel's rounding = %q", d)
	}
	got := Applied{Mechanisms: []string{"tbf"}, InForce: netem.Params{Loss: 0, Rate: 2_000_000, Delay: time.Millisecond}}
	d := strings.Join(Diff(want, got), "; ")
	for _, s := range []string{`mechanisms "tbf", want "tbf+bpf"`, "loss 0%, want 30%", "rate 2000000bit, want 1000000bit", "delay 1000000ns, want 0ns"} {
		if !strings.Contains(d, s) {
			t.Errorf("Diff %q does not say %q", d, s)
		}
	}
}

func TestKernelString(t *testing.T) {
	for k, want := range map[Kernel]string{kernelAll: "netem+tbf+bpf", kernelNoNetem: "tbf+bpf", kernelNone: "none"} {
		if got := k.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", k, got, want)
		}
	}
}
