package impair

import (
	"encoding/binary"
	"io"
	"math"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The netem path cannot run on kernels without sch_netem (this project's
// CI machines): these tests pin what it sends.

func TestNetemQdiscCarriesEverything(t *testing.T) {
	p := netem.Params{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.005, Corrupt: 0.001,
		Duplicate: 0.01, Reorder: 0.25, Rate: 100_000_000}
	q := netemQdisc(7, p)
	a := q.Attrs()
	if a.LinkIndex != 7 || a.Handle != RootHandle || a.Parent != netlink.HANDLE_ROOT {
		t.Errorf("attrs = %+v, want link 7, handle 7274:, parent root", a)
	}
	if q.Type() != "netem" {
		t.Errorf("type %q", q.Type())
	}
	tick := netlink.TickInUsec()
	if want := uint32(20000 * tick); q.Latency != want {
		t.Errorf("Latency = %d ticks, want %d (20ms)", q.Latency, want)
	}
	if want := uint32(5000 * tick); q.Jitter != want {
		t.Errorf("Jitter = %d ticks, want %d (5ms)", q.Jitter, want)
	}
	probs := []struct {
		name string
		got  uint32
		want float64
	}{{"Loss", q.Loss, 0.005}, {"CorruptProb", q.CorruptProb, 0.001}, {"Duplicate", q.Duplicate, 0.01}, {"ReorderProb", q.ReorderProb, 0.25}}
	for _, pr := range probs {
		if got := float64(pr.got) / math.MaxUint32; math.Abs(got-pr.want) > 1e-7 {
			t.Errorf("%s = %d (%g), want %g", pr.name, pr.got, got, pr.want)
		}
	}
	if q.Gap != 1 {
		t.Errorf("Gap = %d, want 1 (reordering needs it, as tc sets)", q.Gap)
	}
	if q.Rate64 != 12_500_000 {
		t.Errorf("Rate64 = %d, want 12500000 bytes/s", q.Rate64)
	}
	if q.Limit != 1000 {
		t.Errorf("Limit = %d, want netem's default 1000 packets", q.Limit)
	}
	// Reading the qdisc back gives the same netem.Params.
	if d := Diff(Applied{InForce: p}, Applied{InForce: netemParams(q, tick)}); d != nil {
		t.Errorf("netemParams differs: %q", d)
	}
}

func TestNetemQdiscLeavesUnsetAlone(t *testing.T) {
	q := netemQdisc(3, netem.Params{Loss: 0.3})
	if q.Latency != 0 || q.Jitter != 0 || q.Duplicate != 0 || q.CorruptProb != 0 || q.ReorderProb != 0 || q.Rate64 != 0 || q.Gap != 0 {
		t.Errorf("netem for loss only = %+v", q)
	}
}

func TestTBFConfigSizes(t *testing.T) {
	tick := 15.625 // 64 ns ticks, as every kernel since 2.6.31
	tests := []struct {
		name         string
		rate         uint64
		mtu          int
		burst, limit uint32
	}{
		// 1mbit = 125000 B/s: 10 ms is 1250 B, below a full frame.
		{"1mbit", 1_000_000, 1500, 1518, 1518 + 25000},
		{"8bit", 8, 1500, 1518, 4 * 1518},
		{"jumbo", 1_000_000, 9000, 9018, 4 * 9018},
		{"1gbit", 1_000_000_000, 1500, 1_250_000, 1_250_000 + 25_000_000},
		{"100gbit", 100_000_000_000, 1500, 125_000_000, 125_000_000 + 2_500_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTBFConfig(tt.rate, tt.mtu, tick)
			if c.Rate != tt.rate/8 || c.Burst != tt.burst || c.Limit != tt.limit {
				t.Errorf("config = %+v, want rate %d burst %d limit %d", c, tt.rate/8, tt.burst, tt.limit)
			}
			wantBuffer := min(float64(c.Burst)/float64(c.Rate)*1e6*tick, math.MaxUint32)
			if math.Abs(float64(c.Buffer)-wantBuffer) > 1 {
				t.Errorf("Buffer = %d ticks, want %.0f", c.Buffer, wantBuffer)
			}
		})
	}
}

func TestTBFRequestAttributes(t *testing.T) {
	for _, rate := range []uint64{1_000_000, 100_000_000_000} {
		c := newTBFConfig(rate, 1500, 15.625)
		req := c.request(9)
		if req.Type != unix.RTM_NEWQDISC || req.Flags&(unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK) != unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK {
			t.Fatalf("header type %d flags %#x", req.Type, req.Flags)
		}
		if len(req.Data) != 3 {
			t.Fatalf("%d data parts, want tcmsg, kind, options", len(req.Data))
		}
		msg := nl.DeserializeTcMsg(req.Data[0].Serialize())
		if msg.Ifindex != 9 || msg.Handle != RootHandle || msg.Parent != netlink.HANDLE_ROOT {
			t.Errorf("tcmsg = %+v", msg)
		}
		attrs, err := nl.ParseRouteAttr(append(req.Data[1].Serialize(), req.Data[2].Serialize()...))
		if err != nil {
			t.Fatal(err)
		}
		if len(attrs) != 2 || attrs[0].Attr.Type != nl.TCA_KIND || string(attrs[0].Value) != "tbf\x00" || attrs[1].Attr.Type != nl.TCA_OPTIONS {
			t.Fatalf("attributes %+v, want kind tbf and options", attrs)
		}
		opts, err := nl.ParseRouteAttr(attrs[1].Value)
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint16][]byte{}
		for _, o := range opts {
			got[o.Attr.Type] = o.Value
		}
		parms := nl.DeserializeTcTbfQopt(got[nl.TCA_TBF_PARMS])
		if parms.Limit != c.Limit || parms.Buffer != c.Buffer || parms.Rate.Linklayer != 1 || parms.Peakrate.Rate != 0 {
			t.Errorf("TCA_TBF_PARMS = %+v for %+v", parms, c)
		}
		if b := got[nl.TCA_TBF_BURST]; len(b) != 4 || binary.NativeEndian.Uint32(b) != c.Burst {
			t.Errorf("TCA_TBF_BURST = %v, want %d", b, c.Burst)
		}
		r64, has64 := got[nl.TCA_TBF_RATE64]
		switch {
		case c.Rate < math.MaxUint32:
			if has64 || uint64(parms.Rate.Rate) != c.Rate {
				t.Errorf("rate %d: TCA_TBF_PARMS rate %d, RATE64 present %v", c.Rate, parms.Rate.Rate, has64)
			}
		default:
			if !has64 || binary.NativeEndian.Uint64(r64) != c.Rate || parms.Rate.Rate != math.MaxUint32 {
				t.Errorf("rate %d: TCA_TBF_RATE64 %v, PARMS rate %d", c.Rate, r64, parms.Rate.Rate)
			}
		}
	}
}

func TestOwnershipRecognition(t *testing.T) {
	if !isOurFilter(bpfFilter(3, 5)) {
		t.Error("our filter not recognised")
	}
	other := bpfFilter(3, 5)
	other.Name = "cilium"
	if isOurFilter(other) {
		t.Error("a filter named otherwise taken for ours")
	}
	other = bpfFilter(3, 5)
	other.Priority = 1
	if isOurFilter(other) {
		t.Error("a filter at another priority taken for ours")
	}
	if !isOurRoot(netemQdisc(3, netem.Params{Loss: 0.1})) {
		t.Error("our netem not recognised")
	}
	htb := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: 3, Handle: RootHandle, Parent: netlink.HANDLE_ROOT})
	if isOurRoot(htb) {
		t.Error("an htb with our handle taken for ours")
	}
	tbf := &netlink.Tbf{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: 3, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}}
	if isOurRoot(tbf) {
		t.Error("a tbf with handle 1: taken for ours")
	}
	f := bpfFilter(4, 6)
	if f.Parent != netlink.HANDLE_MIN_EGRESS || !f.DirectAction || f.Protocol != unix.ETH_P_ALL || f.Fd != 6 {
		t.Errorf("filter = %+v, want egress, direct action, all protocols, fd 6", f)
	}
}

func TestThresholds(t *testing.T) {
	tests := []struct {
		p    float64
		want uint64
	}{{0, 0}, {1, 1 << 32}, {0.5, 1 << 31}, {0.3, 1288490189}, {1e-6, 4295}, {-1, 0}, {2, 1 << 32}}
	for _, tt := range tests {
		if got := threshold(tt.p); got != tt.want {
			t.Errorf("threshold(%g) = %d, want %d", tt.p, got, tt.want)
		}
		if tt.p >= 0 && tt.p <= 1 {
			if back := probability(tt.want); math.Abs(back-tt.p) > 1e-9 {
				t.Errorf("probability(%d) = %g, want %g", tt.want, back, tt.p)
			}
		}
	}
	got := newThresholds(netem.Params{Loss: 1, Corrupt: 0.5, Duplicate: 0})
	if got != (thresholds{1 << 32, 1 << 31, 0}) {
		t.Errorf("newThresholds = %v", got)
	}
}

func TestInstructionsJumpsResolve(t *testing.T) {
	insns := instructions(3)
	symbols := map[string]bool{}
	for _, ins := range insns {
		if s := ins.Symbol(); s != "" {
			if symbols[s] {
				t.Errorf("symbol %q twice", s)
			}
			symbols[s] = true
		}
	}
	for i, ins := range insns {
		if r := ins.Reference(); r != "" && !symbols[r] {
			t.Errorf("instruction %d (%v) jumps to undefined %q", i, ins, r)
		}
	}
	if err := insns.Marshal(io.Discard, binary.LittleEndian); err != nil {
		t.Errorf("instructions do not encode: %v", err)
	}
	last := insns[len(insns)-1]
	if last.OpCode.JumpOp() != asm.Exit {
		t.Errorf("program ends with %v, not exit", last)
	}
}
