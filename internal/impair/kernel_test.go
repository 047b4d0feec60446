package impair

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// kernelConfig returns the value of a CONFIG_ option in /proc/config.gz
// ("y", "m", "" for not set), and false when the kernel does not expose
// its config.
func kernelConfig(t *testing.T, option string) (string, bool) {
	t.Helper()
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return "", false
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("/proc/config.gz: %v", err)
	}
	sc := bufio.NewScanner(z)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), option+"="); ok {
			return v, true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("/proc/config.gz: %v", err)
	}
	return "", true
}

// TestProbeMatchesKernel checks Probe against what tc (iproute2, another
// implementation) can do in a fresh netns, and against the kernel config
// where the kernel exposes it.
func TestProbeMatchesKernel(t *testing.T) {
	requireKernelTests(t)
	k := kernel(t)
	t.Logf("Probe: %s (why: %s)", k, k.Why)
	n := testenv.NewNS(t)
	try := func(args ...string) bool {
		_, err := n.Exec(args...)
		return err == nil
	}
	netem := try("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms")
	try("tc", "qdisc", "del", "dev", "lo", "root")
	tbf := try("tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "10kb", "latency", "50ms")
	_, err := os.Stat("/proc/sys/kernel/unprivileged_bpf_disabled") // only with CONFIG_BPF_SYSCALL
	bpf := err == nil &&
		try("tc", "qdisc", "add", "dev", "lo", "clsact") &&
		try("tc", "filter", "add", "dev", "lo", "egress", "bpf", "bytecode", "1,6 0 0 0,")
	if k.Netem != netem || k.TBF != tbf || k.BPF != bpf {
		t.Errorf("Probe = netem %v tbf %v bpf %v; tc and /proc say netem %v tbf %v bpf %v", k.Netem, k.TBF, k.BPF, netem, tbf, bpf)
	}
	if v, ok := kernelConfig(t, "CONFIG_NET_SCH_NETEM"); ok && (v == "y") != k.Netem && v != "m" {
		t.Errorf("CONFIG_NET_SCH_NETEM=%q but Probe says netem %v", v, k.Netem)
	}
	if v, ok := kernelConfig(t, "CONFIG_NET_SCH_TBF"); ok && (v == "y") != k.TBF && v != "m" {
		t.Errorf("CONFIG_NET_SCH_TBF=%q but Probe says tbf %v", v, k.TBF)
	}
	if (k.Why == "") != (k.Netem && k.TBF && k.BPF) {
		t.Errorf("Why = %q for %s", k.Why, k)
	}
	if !k.Netem && !strings.Contains(k.Why, "sch_netem") {
		t.Errorf("Why = %q does not explain sch_netem", k.Why)
	}
}

// TestProbeHonoursContext: a done context is an error, not a Kernel.
func TestProbeHonoursContext(t *testing.T) {
	requireKernelTests(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Probe(ctx); err == nil {
		t.Error("Probe with a cancelled context succeeded")
	}
}

// requireLossMechanism fails unless the kernel can drop, corrupt and
// duplicate: with netem, or with impair's BPF program. Every machine of
// this project can.
func requireLossMechanism(t *testing.T) Kernel {
	t.Helper()
	k := kernel(t)
	if !k.Netem && !k.BPF {
		t.Fatalf("kernel has neither sch_netem nor tc BPF (%s): loss cannot be applied", k.Why)
	}
	return k
}

func TestProgramLoadsAndReadsBack(t *testing.T) {
	requireKernelTests(t)
	if k := kernel(t); !k.BPF {
		t.Fatalf("Probe says no tc BPF (%s); this kernel has BPF_SYSCALL and cls_bpf", k.Why)
	}
	p := netem.Params{Loss: 0.3, Corrupt: 1, Duplicate: 0.0001}
	prog, err := loadProgram(p)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	info, err := prog.prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("no program ID")
	}
	got, err := readThresholds(int(id))
	if err != nil {
		t.Fatal(err)
	}
	if got != newThresholds(p) {
		t.Errorf("thresholds read back %v, want %v", got, newThresholds(p))
	}
	if err := prog.m.Put(uint32(0), thresholds{}); err == nil {
		t.Error("the map is writable after loading: want it frozen")
	}
}

func TestLoss100DropsEverything(t *testing.T) {
	requireKernelTests(t)
	requireLossMechanism(t)
	w := newWire(t)
	if r := ping(t, w.a, "-c", "3", "-i", "0.2", "-W", "1", w.addrB); r.Received != 3 {
		t.Fatalf("before: %v\n%s", r, r.Out)
	}
	w.apply(t, w.a, w.ifA, netem.Spec{Loss: "100%"})
	if r := ping(t, w.a, "-c", "5", "-i", "0.2", "-W", "1", w.addrB); r.Received != 0 {
		t.Errorf("loss 100%%: %v", r)
	}
	if err := Clear(testCtx(t), w.a.Path(), w.ifA); err != nil {
		t.Fatal(err)
	}
	if r := ping(t, w.a, "-c", "3", "-i", "0.2", "-W", "1", w.addrB); r.Received != 3 {
		t.Errorf("after Clear: %v", r)
	}
}

func TestLoss30Percent(t *testing.T) {
	requireKernelTests(t)
	requireLossMechanism(t)
	w := newWire(t)
	args := []string{"-q", "-c", "200", "-i", "0.01", "-W", "1", w.addrB}

	// One end: requests lost with p = 0.3; 3σ ≈ 0.1 over 200.
	w.apply(t, w.a, w.ifA, netem.Spec{Loss: "30%"})
	r := ping(t, w.a, args...)
	t.Logf("loss 30%% on A: %v", r)
	if f := r.LossFraction(); f < 0.20 || f > 0.40 {
		t.Errorf("loss 30%% on one end: %.1f%% without reply, want 20–40%%", f*100)
	}

	// Both ends: no reply with p = 1 − 0.7² = 0.51.
	w.apply(t, w.b, w.ifB, netem.Spec{Loss: "30%"})
	r = ping(t, w.a, args...)
	t.Logf("loss 30%% on A and B: %v", r)
	if f := r.LossFraction(); f < 0.40 || f > 0.62 {
		t.Errorf("loss 30%% on both ends: %.1f%% without reply, want 40–62%%", f*100)
	}
}

func TestRateShapesTCP(t *testing.T) {
	requireKernelTests(t)
	k := kernel(t)
	if !k.Netem && !k.TBF {
		t.Fatalf("kernel has neither sch_netem nor sch_tbf (%s)", k.Why)
	}
	w := newWire(t)
	const d = 2500 * time.Millisecond
	free := w.throughput(t, d)
	t.Logf("without rate: %.1f Mbit/s", free/1e6)
	if free < 20e6 {
		t.Errorf("without rate: %.1f Mbit/s, want ≫ 1 Mbit/s", free/1e6)
	}

	a := w.apply(t, w.a, w.ifA, netem.Spec{Rate: "1mbit"})
	want := []string{MechTBF}
	if k.Netem {
		want = []string{MechNetem}
	}
	if !slices.Equal(a.Mechanisms, want) {
		t.Errorf("Mechanisms = %q, want %q", a.Mechanisms, want)
	}
	shaped := w.throughput(t, d)
	t.Logf("rate 1mbit: %.3f Mbit/s", shaped/1e6)
	if shaped > 1.2e6 {
		t.Errorf("rate 1mbit: %.3f Mbit/s, want ≤ 1.2", shaped/1e6)
	}
	if shaped < 0.5e6 {
		t.Errorf("rate 1mbit: %.3f Mbit/s, want the link usable (≥ 0.5)", shaped/1e6)
	}

	if err := Clear(testCtx(t), w.a.Path(), w.ifA); err != nil {
		t.Fatal(err)
	}
	if again := w.throughput(t, d); again < 20e6 {
		t.Errorf("after Clear: %.1f Mbit/s, want the rate gone", again/1e6)
	}
}

func TestDuplicate100DoublesEveryPacketOnce(t *testing.T) {
	requireKernelTests(t)
	requireLossMechanism(t)
	w := newWire(t)
	w.apply(t, w.a, w.ifA, netem.Spec{Duplicate: "100%"})
	r := ping(t, w.a, "-c", "5", "-i", "0.2", "-W", "1", w.addrB)
	t.Logf("duplicate 100%%: %v", r)
	// Each request goes out twice and B answers both: two replies per
	// sequence number, never more (a copy is not duplicated again). ping
	// exits on the fifth reply, so the fifth's copy may come too late.
	perSeq := map[string]int{}
	for _, m := range regexp.MustCompile(`icmp_seq=(\d+) `).FindAllStringSubmatch(r.Out, -1) {
		perSeq[m[1]]++
	}
	for seq := 1; seq <= 5; seq++ {
		n, want := perSeq[strconv.Itoa(seq)], 2
		if seq == 5 && n == 1 {
			want = 1
		}
		if n != want {
			t.Errorf("icmp_seq=%d: %d replies, want 2", seq, n)
		}
	}
	if r.Received != 5 || r.Duplicates < 4 || r.Duplicates > 5 || !strings.Contains(r.Out, "DUP!") {
		t.Errorf("duplicate 100%%: %v, want 5 received and a duplicate of each\n%s", r, r.Out)
	}
}

func TestCorrupt100BreaksChecksums(t *testing.T) {
	requireKernelTests(t)
	requireLossMechanism(t)
	w := newWire(t)
	before := icmpInCsumErrors(t, w.b)
	w.apply(t, w.a, w.ifA, netem.Spec{Corrupt: "100%"})
	r := ping(t, w.a, "-c", "5", "-i", "0.2", "-W", "1", w.addrB)
	t.Logf("corrupt 100%%: %v", r)
	if r.Received != 0 {
		t.Errorf("corrupt 100%%: %v, want no valid reply", r)
	}
	// The requests reached B, corrupted: counted as ICMP checksum errors,
	// not lost.
	if got := icmpInCsumErrors(t, w.b) - before; got != 5 {
		t.Errorf("B counted %d ICMP checksum errors, want 5", got)
	}
}

// icmpInCsumErrors reads Icmp InCsumErrors from the netns's /proc/net/snmp.
func icmpInCsumErrors(t *testing.T, n *testenv.NS) int {
	t.Helper()
	out := n.MustExec(t, "cat", "/proc/net/snmp")
	var names []string
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "Icmp: ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if names == nil {
			names = fields
			continue
		}
		for i, name := range names {
			if name == "InCsumErrors" && i < len(fields) {
				v, err := strconv.Atoi(fields[i])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no Icmp InCsumErrors in /proc/net/snmp:\n%s", out)
	return 0
}

func TestDelay(t *testing.T) {
	requireKernelTests(t)
	k := kernel(t)
	w := newWire(t)
	a := w.apply(t, w.a, w.ifA, netem.Spec{Delay: "50ms"})
	got, err := Inspect(testCtx(t), w.a.Path(), w.ifA)
	if err != nil {
		t.Fatal(err)
	}
	r := ping(t, w.a, "-c", "3", "-i", "0.2", "-W", "2", w.addrB)
	if k.Netem {
		if a.String() != "netem" || !slices.Equal(got.Mechanisms, []string{MechNetem}) {
			t.Errorf("Apply = %q, Inspect = %q, want netem", a, got)
		}
		if r.Received != 3 || r.MinRTT < 50 {
			t.Errorf("delay 50ms with netem: %v, want RTT ≥ 50 ms", r)
		}
		w.apply(t, w.b, w.ifB, netem.Spec{Delay: "50ms"})
		if r := ping(t, w.a, "-c", "3", "-i", "0.2", "-W", "2", w.addrB); r.Received != 3 || r.MinRTT < 100 {
			t.Errorf("delay 50ms on both ends with netem: %v, want RTT ≥ 100 ms", r)
		}
		return
	}
	if want := "not applied: delay: kernel has no sch_netem"; a.String() != want {
		t.Errorf("Apply = %q, want %q", a, want)
	}
	if len(got.Mechanisms) != 0 || got.InForce.Delay != 0 {
		t.Errorf("Inspect = %q (%s), want nothing on the interface", got, got.InForce)
	}
	if err := Verify(testCtx(t), w.a.Path(), w.ifA, netem.Spec{Delay: "50ms"}, k); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if r.Received != 3 || r.MinRTT >= 50 {
		t.Errorf("without netem: %v, want replies and no delay", r)
	}
}

func TestApplyReplacesAndClearRemovesOnlyOurs(t *testing.T) {
	requireKernelTests(t)
	// On a kernel without netem this drives the tbf+bpf path and checks
	// it with tc too; with netem, netem carries everything and Inspect is
	// checked against Plan the same way.
	k := kernel(t)
	w := newWire(t)
	ctx := testCtx(t)
	check := func(s netem.Spec) {
		t.Helper()
		want, err := Plan(s, k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Inspect(ctx, w.a.Path(), w.ifA)
		if err != nil {
			t.Fatal(err)
		}
		if d := Diff(want, got); d != nil {
			t.Errorf("after Apply(%+v): Inspect differs from Plan: %q", s, d)
		}
		if err := Verify(ctx, w.a.Path(), w.ifA, s, k); err != nil {
			t.Errorf("Verify: %v", err)
		}
	}

	loss := netem.Spec{Loss: "30%"}
	w.apply(t, w.a, w.ifA, loss)
	w.apply(t, w.a, w.ifA, loss) // idempotent
	check(loss)

	rate := netem.Spec{Rate: "1mbit"}
	w.apply(t, w.a, w.ifA, rate)
	check(rate)
	qdiscs := tcShow(t, w.a, "qdisc", "show", "dev", w.ifA)
	filters := tcShow(t, w.a, "filter", "show", "dev", w.ifA, "egress")
	if !k.Netem {
		if !strings.Contains(qdiscs, "qdisc tbf 7274: root") || strings.Contains(qdiscs, "clsact") || strings.TrimSpace(filters) != "" {
			t.Errorf("after loss → rate: qdiscs\n%s\negress filters\n%s\nwant tbf 7274: only", qdiscs, filters)
		}
	}
	// A Verify against what is not there fails.
	if err := Verify(ctx, w.a.Path(), w.ifA, loss, k); err == nil {
		t.Error("Verify of loss 30% on a link shaped to 1mbit succeeded")
	}

	both := netem.Spec{Loss: "0.5%", Corrupt: "0.1%", Duplicate: "1%", Rate: "100mbit"}
	a := w.apply(t, w.a, w.ifA, both)
	if want := "tbf+bpf"; !k.Netem && a.String() != want {
		t.Errorf("Apply = %q, want %q", a, want)
	}
	check(both)
	if !k.Netem {
		filters = tcShow(t, w.a, "filter", "show", "dev", w.ifA, "egress")
		if !strings.Contains(filters, FilterName) || !strings.Contains(filters, "direct-action") {
			t.Errorf("egress filters:\n%s\nwant %s in direct-action mode", filters, FilterName)
		}
	}

	// A zero netem.Spec clears like Clear.
	w.apply(t, w.a, w.ifA, netem.Spec{})
	check(netem.Spec{})

	w.apply(t, w.a, w.ifA, both)
	var progIDs []ebpf.ProgramID
	if k.BPF && !k.Netem {
		progIDs = append(progIDs, filterProgramID(t, w))
		w.apply(t, w.a, w.ifA, both) // replaces the program
		progIDs = append(progIDs, filterProgramID(t, w))
	}
	if err := Clear(ctx, w.a.Path(), w.ifA); err != nil {
		t.Fatal(err)
	}
	check(netem.Spec{})
	// No program (nor its map) outlives the filter that ran it: impair
	// keeps no file descriptor.
	for _, id := range progIDs {
		requireProgramGone(t, id)
	}
	qdiscs = tcShow(t, w.a, "qdisc", "show", "dev", w.ifA)
	if strings.Contains(qdiscs, "7274:") || strings.Contains(qdiscs, "clsact") {
		t.Errorf("after Clear:\n%s", qdiscs)
	}
	if err := Clear(ctx, w.a.Path(), w.ifA); err != nil {
		t.Errorf("second Clear: %v", err)
	}
}

func TestClearKeepsOthersFilters(t *testing.T) {
	requireKernelTests(t)
	requireLossMechanism(t)
	w := newWire(t)
	w.a.MustExec(t, "tc", "qdisc", "add", "dev", w.ifA, "clsact")
	w.a.MustExec(t, "tc", "filter", "add", "dev", w.ifA, "egress", "prio", "40000", "bpf", "bytecode", "1,6 0 0 0,")
	w.apply(t, w.a, w.ifA, netem.Spec{Loss: "100%"})
	if r := ping(t, w.a, "-c", "2", "-i", "0.2", "-W", "1", w.addrB); r.Received != 0 {
		t.Errorf("loss 100%% beside another filter: %v", r)
	}
	if err := Clear(testCtx(t), w.a.Path(), w.ifA); err != nil {
		t.Fatal(err)
	}
	filters := tcShow(t, w.a, "filter", "show", "dev", w.ifA, "egress")
	if !strings.Contains(filters, "pref 40000 bpf") || strings.Contains(filters, FilterName) {
		t.Errorf("after Clear, egress filters:\n%s\nwant the other one only", filters)
	}
	if qdiscs := tcShow(t, w.a, "qdisc", "show", "dev", w.ifA); !strings.Contains(qdiscs, "clsact") {
		t.Errorf("Clear removed a clsact holding another's filter:\n%s", qdiscs)
	}
}

func TestClearAndApplyOnMissing(t *testing.T) {
	requireKernelTests(t)
	w := newWire(t)
	ctx := testCtx(t)
	if err := Clear(ctx, w.a.Path(), "nosuch0"); err != nil {
		t.Errorf("Clear on a missing interface: %v", err)
	}
	gone := filepath.Join(t.TempDir(), "no-netns")
	if err := Clear(ctx, gone, "eth0"); err != nil {
		t.Errorf("Clear in a missing netns: %v", err)
	}
	if _, err := Apply(ctx, w.a.Path(), "nosuch0", netem.Spec{Loss: "1%"}, kernel(t)); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("Apply on a missing interface: %v, want ErrLinkNotFound", err)
	}
	if _, err := Apply(ctx, gone, "eth0", netem.Spec{Loss: "1%"}, kernel(t)); !errors.Is(err, ErrNetnsGone) {
		t.Errorf("Apply in a missing netns: %v, want ErrNetnsGone", err)
	}
	if _, err := Inspect(ctx, w.a.Path(), "nosuch0"); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("Inspect on a missing interface: %v, want ErrLinkNotFound", err)
	}
	if _, err := Apply(ctx, w.a.Path(), w.ifA, netem.Spec{Loss: "x"}, kernel(t)); !errors.Is(err, netem.ErrInvalid) {
		t.Errorf("Apply of an invalid netem.Spec: %v, want netem.ErrInvalid", err)
	}
	// The link deleted under an applied impairment: Clear still succeeds.
	w.apply(t, w.a, w.ifA, netem.Spec{Loss: "1%", Rate: "10mbit"})
	w.a.MustExec(t, "ip", "link", "del", w.ifA)
	if err := Clear(ctx, w.a.Path(), w.ifA); err != nil {
		t.Errorf("Clear after the link went: %v", err)
	}
}

// filterProgramID returns the ID of the program in impair's filter on
// end A, as tc shows it.
func filterProgramID(t *testing.T, w *wire) ebpf.ProgramID {
	t.Helper()
	out := tcShow(t, w.a, "filter", "show", "dev", w.ifA, "egress")
	m := regexp.MustCompile(FilterName + ` .* id (\d+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s filter with a program id:\n%s", FilterName, out)
	}
	id, err := strconv.ParseUint(m[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return ebpf.ProgramID(id)
}

// requireProgramGone fails unless the kernel frees the program with the
// given ID within a few seconds (programs are freed after an RCU grace
// period).
func requireProgramGone(t *testing.T, id ebpf.ProgramID) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err == nil {
			p.Close()
		}
		if time.Now().After(deadline) {
			t.Errorf("BPF program %d still loaded (err %v)", id, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
