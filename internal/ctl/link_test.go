package ctl

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/memstore"
)

const testLinkID = "a.in1--b.in2"

// linkStore holds one wired cross-host link default/a.in1--b.in2 whose end
// a has an impairment its agent applied.
func linkStore(t *testing.T) (*memstore.Store, store.Keys, store.LinkRecord) {
	t.Helper()
	k := store.Keys{Prefix: "/ratchet"}
	kv := memstore.New(k.Prefix)
	t.Cleanup(func() { kv.Close() })
	rec := store.LinkRecord{
		ID: testLinkID, Namespace: "default", State: store.LinkWired, VNI: 4242, MTU: 1450, Declarer: "a",
		Updated: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC),
		A: store.LinkEnd{Pod: "a", IfName: "in1", IP: "192.0.2.1/30", Host: "node0", Up: true,
			Netem: &netem.Spec{Delay: "20ms"}, Applied: "netem"},
		B: store.LinkEnd{Pod: "b", IfName: "in2", IP: "192.0.2.2/30", Host: "node1", Up: true},
	}
	if _, err := store.CreateJSON(context.Background(), kv, k.Link("default", testLinkID), rec, 0); err != nil {
		t.Fatal(err)
	}
	return kv, k, rec
}

// runLinkOn parses a link command line and applies it to kv.
func runLinkOn(t *testing.T, kv store.Store, k store.Keys, args ...string) (store.LinkRecord, bool, error) {
	t.Helper()
	op, err := parseLink(&app{}, args)
	if err != nil {
		return store.LinkRecord{}, false, err
	}
	return op.apply(context.Background(), kv, k)
}

func mustLink(t *testing.T, kv store.Store, k store.Keys, args ...string) store.LinkRecord {
	t.Helper()
	rec, _, err := runLinkOn(t, kv, k, args...)
	if err != nil {
		t.Fatalf("link %q: %v", args, err)
	}
	got, _, err := store.GetLink(context.Background(), kv, k, "default", testLinkID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Fatalf("link %q returned %+v, the store holds %+v", args, rec, got)
	}
	return got
}

// rawLink is the stored value and version of the test link.
func rawLink(t *testing.T, kv store.Store, k store.Keys) (string, int64) {
	t.Helper()
	got, err := kv.Get(context.Background(), k.Link("default", testLinkID))
	if err != nil {
		t.Fatal(err)
	}
	return string(got.Value), got.Version
}

func TestLinkSetClearDownUpRoundTrip(t *testing.T) {
	kv, k, orig := linkStore(t)
	// Flags after the positional argument, the ends in either order.
	r := mustLink(t, kv, k, "set", "default/b.in2--a.in1", "--loss", "30%", "--rate", "1mbit")
	wantA := &netem.Spec{Delay: "20ms", Loss: "30%", Rate: "1mbit"}
	wantB := &netem.Spec{Loss: "30%", Rate: "1mbit"}
	if !reflect.DeepEqual(r.A.Netem, wantA) || !reflect.DeepEqual(r.B.Netem, wantB) || !r.NetemSet {
		t.Fatalf("after set: a %+v b %+v netemSet %v", r.A.Netem, r.B.Netem, r.NetemSet)
	}
	// What the agents own is left to them; the rest of the record too.
	if r.A.Applied != "netem" || r.B.Applied != "" || !r.Updated.Equal(orig.Updated) || r.State != orig.State ||
		r.VNI != orig.VNI || r.A.Up != true || r.Admin != "" {
		t.Fatalf("set changed more than the impairment: %+v", r)
	}
	// Merged: a later set keeps the fields it does not name; zero or
	// empty values remove one.
	r = mustLink(t, kv, k, "set", "-n", "default", testLinkID, "--delay", "0ms", "--loss=", "--corrupt", "0.5%", "--rate", "0")
	if !reflect.DeepEqual(r.A.Netem, &netem.Spec{Corrupt: "0.5%"}) || !reflect.DeepEqual(r.B.Netem, &netem.Spec{Corrupt: "0.5%"}) {
		t.Fatalf("after merge: a %+v b %+v", r.A.Netem, r.B.Netem)
	}
	r = mustLink(t, kv, k, "set", testLinkID, "--corrupt", "0%")
	if r.A.Netem != nil || r.B.Netem != nil || !r.NetemSet {
		t.Fatalf("removing the last field leaves %+v / %+v", r.A.Netem, r.B.Netem)
	}
	mustLink(t, kv, k, "set", testLinkID, "--delay", "50ms", "--jitter", "5ms", "--reorder", "25%", "--duplicate", "1%")
	r = mustLink(t, kv, k, "clear", "default/"+testLinkID)
	if r.A.Netem != nil || r.B.Netem != nil || !r.NetemSet || r.A.Applied != "netem" {
		t.Fatalf("after clear: %+v", r)
	}
	r = mustLink(t, kv, k, "down", "default/"+testLinkID)
	if r.Admin != store.AdminDown || !r.IsDown() {
		t.Fatalf("after down: admin %q", r.Admin)
	}
	if _, changed, err := runLinkOn(t, kv, k, "down", testLinkID); err != nil || changed {
		t.Fatalf("down again: changed %v, %v", changed, err)
	}
	r = mustLink(t, kv, k, "up", testLinkID)
	if r.Admin != store.AdminUp || r.IsDown() {
		t.Fatalf("after up: admin %q", r.Admin)
	}
	// Nothing to change: no write.
	_, ver := rawLink(t, kv, k)
	if _, changed, err := runLinkOn(t, kv, k, "clear", testLinkID); err != nil || changed {
		t.Fatalf("clear again: changed %v, %v", changed, err)
	}
	if _, again := rawLink(t, kv, k); again != ver {
		t.Errorf("an unchanged link was written: version %d -> %d", ver, again)
	}
}

func TestLinkEndTouchesOneEnd(t *testing.T) {
	kv, k, _ := linkStore(t)
	r := mustLink(t, kv, k, "set", testLinkID, "--loss", "10%", "--end", "b")
	if !reflect.DeepEqual(r.A.Netem, &netem.Spec{Delay: "20ms"}) || !reflect.DeepEqual(r.B.Netem, &netem.Spec{Loss: "10%"}) {
		t.Fatalf("set --end b: a %+v b %+v", r.A.Netem, r.B.Netem)
	}
	r = mustLink(t, kv, k, "clear", "--end", "a", testLinkID)
	if r.A.Netem != nil || !reflect.DeepEqual(r.B.Netem, &netem.Spec{Loss: "10%"}) {
		t.Fatalf("clear --end a: a %+v b %+v", r.A.Netem, r.B.Netem)
	}
	if _, err := parseLink(&app{}, []string{"set", testLinkID, "--loss", "1%", "--end", "c"}); err == nil || !strings.Contains(err.Error(), "--end") {
		t.Errorf("--end c: %v", err)
	}
}

func TestLinkSetNetemSetOnAnUnchangedSpec(t *testing.T) {
	kv, k, _ := linkStore(t)
	// The same value as declared still pins it: NetemSet is written once.
	r, changed, err := runLinkOn(t, kv, k, "set", testLinkID, "--end", "a", "--delay", "20ms")
	if err != nil || !changed || !r.NetemSet {
		t.Fatalf("first set: changed %v netemSet %v, %v", changed, r.NetemSet, err)
	}
	if _, changed, err := runLinkOn(t, kv, k, "set", testLinkID, "--end", "a", "--delay", "20ms"); err != nil || changed {
		t.Fatalf("second set: changed %v, %v", changed, err)
	}
}

func TestLinkInvalidValuesNameTheFlagAndWriteNothing(t *testing.T) {
	kv, k, _ := linkStore(t)
	before, ver := rawLink(t, kv, k)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set", testLinkID, "--loss", "30"}, "--loss"},
		{[]string{"set", testLinkID, "--loss", "101%"}, "--loss"},
		{[]string{"set", testLinkID, "--rate", "fast"}, "--rate"},
		{[]string{"set", testLinkID, "--rate", "1bit"}, "--rate"},
		{[]string{"set", testLinkID, "--delay", "61s"}, "--delay"},
		{[]string{"set", testLinkID, "--delay", "-5ms"}, "--delay"},
		{[]string{"set", testLinkID, "--jitter", "1h"}, "--jitter"},
		{[]string{"set", testLinkID, "--corrupt", strings.Repeat("1", 100) + "%"}, "--corrupt"},
		{[]string{"set", testLinkID, "--reorder", "x"}, "--reorder"},
		{[]string{"set", testLinkID, "--duplicate", "1e3%"}, "--duplicate"},
		{[]string{"set", testLinkID}, "give at least one"},
		{[]string{"set", testLinkID, "--loss", "1%", "--bogus", "1"}, "bogus"},
		{[]string{"down", testLinkID, "--loss", "1%"}, "loss"},
		{[]string{"clear", testLinkID, "--delay", "1ms"}, "delay"},
		{[]string{"set", "--loss", "1%"}, "want one NS/LINK"},
		{[]string{"up", testLinkID, testLinkID}, "want one NS/LINK"},
		{[]string{"flap", testLinkID}, `unknown "flap"`},
		{[]string{}, "want set, clear, down or up"},
		{[]string{"up", "default/a.in1"}, "POD.IFNAME--POD.IFNAME"},
		{[]string{"up", "default/a.in1--b.in2--c.in3"}, "POD.IFNAME--POD.IFNAME"},
		{[]string{"up", "default/a.in1---b.in2"}, "POD.IFNAME--POD.IFNAME"},
		{[]string{"up", "default/a.in1--b"}, "POD.IFNAME--POD.IFNAME"},
		{[]string{"up", "default/a.in1--b.in2/x"}, "byte"},
		{[]string{"up", "default/a.in1--b.i n2"}, "byte"},
		{[]string{"up", "Default/a.in1--b.in2"}, "not a DNS label"},
		{[]string{"up", "/a.in1--b.in2"}, "not a DNS label"},
		{[]string{"up", "default/" + strings.Repeat("a", 600) + ".x--b.y"}, "longer than 512"},
		{[]string{"up", "-n", "lab", "default/a.in1--b.in2"}, `-n says "lab"`},
	} {
		_, _, err := runLinkOn(t, kv, k, tc.args...)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("link %q: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
	// Valid flags whose merge with the end's spec is not: caught before
	// the write, naming the field and the flag.
	kv2, k2, _ := linkStore(t)
	mustLink(t, kv2, k2, "set", testLinkID, "--end", "b", "--loss", "1%")
	before2, ver2 := rawLink(t, kv2, k2)
	_, _, err := runLinkOn(t, kv2, k2, "set", testLinkID, "--jitter", "5ms")
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "netem.jitter") || !strings.Contains(err.Error(), "--jitter") ||
		!strings.Contains(err.Error(), "end b") {
		t.Errorf("jitter without delay on end b: %v", err)
	}
	if after, v := rawLink(t, kv2, k2); after != before2 || v != ver2 {
		t.Errorf("a rejected set wrote the record:\n%s\n%s", before2, after)
	}
	if after, v := rawLink(t, kv, k); after != before || v != ver {
		t.Errorf("rejected command lines wrote the record:\n%s\n%s", before, after)
	}
}

func TestLinkUnknownNamesLinkAndNamespace(t *testing.T) {
	kv, k, _ := linkStore(t)
	for _, args := range [][]string{{"down", "lab/a.in1--b.in2"}, {"set", "default/a.in1--c.in2", "--loss", "1%"}} {
		_, _, err := runLinkOn(t, kv, k, args...)
		var ie *inputError
		if !errors.As(err, &ie) {
			t.Fatalf("link %q: %v, want an inputError", args, err)
		}
		ns, id, _ := strings.Cut(args[1], "/")
		if !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "namespace "+ns) {
			t.Errorf("link %q: %v does not name the link and namespace", args, err)
		}
		var stderr bytes.Buffer
		if code := (&app{stderr: &stderr}).fail(err); code != ExitBadInput {
			t.Errorf("exit %d for %v", code, err)
		}
	}
}

func TestLinkRetriesWhenTheAgentWritesMeanwhile(t *testing.T) {
	kv, k, _ := linkStore(t)
	key := k.Link("default", testLinkID)
	// An agent records how it applied the old spec between ratchetctl's
	// read and its write: the write conflicts, is retried on the new
	// record, and keeps the agent's field.
	kv.OnNext(memstore.OpUpdate, key, func() {
		if _, _, err := store.Update(context.Background(), kv, key, func(r *store.LinkRecord) error {
			r.B.Applied = "not applied: delay: kernel has no sch_netem"
			return nil
		}); err != nil {
			t.Error(err)
		}
	})
	r := mustLink(t, kv, k, "set", testLinkID, "--loss", "5%")
	if r.B.Applied == "" || r.B.Netem == nil || r.B.Netem.Loss != "5%" {
		t.Fatalf("after a conflict: %+v", r.B)
	}
	if kv.Ops()[memstore.OpUpdate] < 3 {
		t.Errorf("no conflict happened: %v", kv.Ops())
	}
}

func TestLinkEtcdUnavailableIsAFailure(t *testing.T) {
	kv, k, _ := linkStore(t)
	kv.SetUnavailable(true)
	_, _, err := runLinkOn(t, kv, k, "down", testLinkID)
	if !errors.Is(err, store.ErrUnavailable) || (&app{stderr: &bytes.Buffer{}}).fail(err) != ExitFailure {
		t.Fatalf("down with etcd unavailable: %v", err)
	}
}

func TestLinkBadCommandLinesExitTwoBeforeEtcd(t *testing.T) {
	// No etcd is reachable: input is checked before connecting.
	env := map[string]string{"ETCD_ENDPOINTS": "http://127.0.0.1:9", "ETCD_TIMEOUT": "100ms"}
	for _, args := range [][]string{
		{"link", "set", "default/" + testLinkID, "--loss", "abc"},
		{"link", "set", "default/" + testLinkID},
		{"link", "down", "nope"},
		{"link"},
	} {
		var out, errOut bytes.Buffer
		code := Main(args, func(k string) string { return env[k] }, &out, &errOut)
		if code != ExitBadInput || strings.Contains(errOut.String(), "127.0.0.1:9") {
			t.Errorf("ratchetctl %q: exit %d, %s", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	Main([]string{"link", "set", "default/" + testLinkID, "--rate", "1mb"}, func(string) string { return "" }, &out, &errOut)
	if !strings.Contains(errOut.String(), `--rate "1mb": want a rate like`) {
		t.Errorf("error for --rate 1mb: %s", errOut.String())
	}
}

func TestLinkDescribe(t *testing.T) {
	kv, k, _ := linkStore(t)
	op, err := parseLink(&app{}, []string{"set", testLinkID, "--end", "b", "--rate", "1.5mbit"})
	if err != nil {
		t.Fatal(err)
	}
	r, changed, err := op.apply(context.Background(), kv, k)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := op.describe(&r, changed), "link default/a.in1--b.in2: a delay 20ms; b rate 1500kbit"; got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
	op, _ = parseLink(&app{}, []string{"up", testLinkID})
	r, changed, _ = op.apply(context.Background(), kv, k)
	if got, want := op.describe(&r, changed), "link default/a.in1--b.in2: admin up (unchanged)"; got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
}

// FuzzLinkCommandLine feeds arbitrary link names and flag values to the
// parser: it never panics, and what it accepts is a valid namespace, a
// canonical link ID and values that validate.
func FuzzLinkCommandLine(f *testing.F) {
	f.Add("default/a.in1--b.in2", "loss", "30%")
	f.Add("b.in2--a.in1", "rate", "1.5mbit")
	f.Add("lab/x%2E.y--z.w", "delay", "0ms")
	f.Add("a--b", "jitter", "5ms")
	f.Fuzz(func(t *testing.T, name, flagName, value string) {
		op, err := parseLink(&app{}, []string{"set", name, "--" + flagName, value})
		if err != nil {
			return
		}
		if !isDNSLabel(op.ns) || len(op.id) > MaxLinkIDLen || strings.Contains(op.id, "/") {
			t.Fatalf("accepted ns %q id %q", op.ns, op.id)
		}
		again, err := parseLink(&app{}, []string{"up", op.ns + "/" + op.id})
		if err != nil || again.id != op.id {
			t.Fatalf("canonical id %q not stable: %v", op.id, err)
		}
		var s netem.Spec
		for n, v := range op.values {
			*specField(&s, n) = v
		}
		s.Delay = "1ms"
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted %q = %q: %v", flagName, value, err)
		}
	})
}
