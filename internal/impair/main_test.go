package impair

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// testCtx bounds one test's calls.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// requireKernelTests skips under -short (unit tests only) and otherwise
// needs root (failing in CI without it).
func requireKernelTests(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel test: network namespaces, qdiscs and BPF")
	}
	testenv.RequireRoot(t)
}

// probed is the running kernel's abilities, probed once per test process.
var probed = sync.OnceValues(func() (Kernel, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Probe(ctx)
})

// kernel returns what Probe found, failing the test when it cannot run.
func kernel(t *testing.T) Kernel {
	t.Helper()
	k, err := probed()
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	return k
}

// wire is two netns joined by a veth pair with addresses 192.0.2.1/24
// (a, end A) and 192.0.2.2/24 (b, end B), static neighbour entries (so
// loss and corruption never hit ARP), all removed at the end of the test.
type wire struct {
	a, b         *testenv.NS
	ifA, ifB     string
	addrA, addrB string
}

func newWire(t testing.TB) *wire {
	t.Helper()
	w := &wire{a: testenv.NewNS(t), b: testenv.NewNS(t), ifA: testenv.UniqueName("ia"), ifB: testenv.UniqueName("ib"),
		addrA: "192.0.2.1", addrB: "192.0.2.2"}
	if out, err := exec.Command("ip", "link", "add", w.ifA, "netns", w.a.Name, "type", "veth",
		"peer", "name", w.ifB, "netns", w.b.Name).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	// The veth goes with its netns; removing it explicitly too covers a
	// netns whose removal failed.
	t.Cleanup(func() { _, _ = w.a.Exec("ip", "link", "del", w.ifA) })
	w.a.MustExec(t, "ip", "addr", "add", w.addrA+"/24", "dev", w.ifA)
	w.b.MustExec(t, "ip", "addr", "add", w.addrB+"/24", "dev", w.ifB)
	w.a.MustExec(t, "ip", "link", "set", w.ifA, "up")
	w.b.MustExec(t, "ip", "link", "set", w.ifB, "up")
	macA := mac(t, w.a, w.ifA)
	macB := mac(t, w.b, w.ifB)
	w.a.MustExec(t, "ip", "neigh", "replace", w.addrB, "lladdr", macB, "dev", w.ifA, "nud", "permanent")
	w.b.MustExec(t, "ip", "neigh", "replace", w.addrA, "lladdr", macA, "dev", w.ifB, "nud", "permanent")
	return w
}

// mac returns the interface's MAC address.
func mac(t testing.TB, n *testenv.NS, ifname string) string {
	t.Helper()
	out := n.MustExec(t, "cat", "/sys/class/net/"+ifname+"/address")
	return strings.TrimSpace(out)
}

// apply applies s to one end and fails the test on error.
func (w *wire) apply(t *testing.T, n *testenv.NS, ifname string, s netem.Spec) Applied {
	t.Helper()
	a, err := Apply(testCtx(t), n.Path(), ifname, s, kernel(t))
	if err != nil {
		t.Fatalf("Apply(%s, %+v): %v", ifname, s, err)
	}
	t.Logf("Apply(%s, %+v) = %q", ifname, s, a)
	return a
}

// ping runs ping in from's netns with the given arguments and parses its
// summary; a run with no reply is a result, not an error.
func ping(t *testing.T, from *testenv.NS, args ...string) testenv.PingResult {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", from.Name, "ping"}, args...)...)
	out, _ := cmd.CombinedOutput()
	r, err := testenv.ParsePing(string(out))
	if err != nil {
		t.Fatalf("ping %v: %v", args, err)
	}
	return r
}

// throughput measures a TCP transfer from a to b (see testenv.Throughput).
func (w *wire) throughput(t *testing.T, d time.Duration) float64 {
	t.Helper()
	bps, err := testenv.Throughput(w.a.Path(), w.b.Path(), w.addrB, d)
	if err != nil {
		t.Fatal(err)
	}
	return bps
}

// tcShow runs tc in n's netns and returns its output.
func tcShow(t *testing.T, n *testenv.NS, args ...string) string {
	t.Helper()
	return n.MustExec(t, append([]string{"tc"}, args...)...)
}
