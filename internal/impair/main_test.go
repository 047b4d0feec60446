package impair

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
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

// pingResult is ping's summary.
type pingResult struct {
	sent, received, duplicates int
	minRTT                     float64 // ms; 0 when nothing came back
	out                        string
}

var (
	pingCountsRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?`)
	pingRTTRE    = regexp.MustCompile(`rtt min/avg/max/mdev = ([0-9.]+)/`)
)

// ping runs ping in from's netns with the given arguments and parses its
// summary; a run with no reply is a result, not an error.
func ping(t *testing.T, from *testenv.NS, args ...string) pingResult {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", from.Name, "ping"}, args...)...)
	out, _ := cmd.CombinedOutput()
	r := pingResult{out: string(out)}
	m := pingCountsRE.FindStringSubmatch(r.out)
	if m == nil {
		t.Fatalf("ping %v: no summary in output:\n%s", args, out)
	}
	r.sent, _ = strconv.Atoi(m[1])
	r.received, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		r.duplicates, _ = strconv.Atoi(m[3])
	}
	if m := pingRTTRE.FindStringSubmatch(r.out); m != nil {
		r.minRTT, _ = strconv.ParseFloat(m[1], 64)
	}
	return r
}

// lossFraction is the share of echo requests that got no reply.
func (r pingResult) lossFraction() float64 {
	return 1 - float64(r.received)/float64(r.sent)
}

// warmUp is how long a transfer runs before throughput counts.
const warmUp = time.Second

// readFor reads from c for d and returns how many bytes came.
func readFor(c net.Conn, d time.Duration) (int64, error) {
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		err = nil
	} else if err == nil {
		err = io.ErrUnexpectedEOF // the sender never stops on its own
	}
	return n, err
}

// throughput measures a TCP transfer from a to b: after warmUp, the bits
// per second the receiver counts over d.
func (w *wire) throughput(t *testing.T, d time.Duration) float64 {
	t.Helper()
	var l net.Listener
	err := ns.WithNetNSPath(w.b.Path(), func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", net.JoinHostPort(w.addrB, "0"))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", w.b.Name, err)
	}
	defer l.Close()
	type counted struct {
		n   int64
		err error
	}
	got := make(chan counted, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- counted{err: err}
			return
		}
		defer c.Close()
		// The first second (slow start, first drops at the shaper) is
		// not counted: the rate is what the link carries after it.
		if _, err := readFor(c, warmUp); err != nil {
			got <- counted{err: err}
			return
		}
		n, err := readFor(c, d)
		got <- counted{n: n, err: err}
	}()
	var c net.Conn
	err = ns.WithNetNSPath(w.a.Path(), func(ns.NetNS) error {
		var err error
		dialer := net.Dialer{Timeout: 5 * time.Second}
		c, err = dialer.Dial("tcp4", l.Addr().String())
		return err
	})
	if err != nil {
		t.Fatalf("dial from %s: %v", w.a.Name, err)
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("receive: %v", r.err)
		}
		return float64(r.n) * 8 / d.Seconds()
	case <-time.After(warmUp + d + 10*time.Second):
		t.Fatal("receiver did not finish")
		return 0
	}
}

// tcShow runs tc in n's netns and returns its output.
func tcShow(t *testing.T, n *testenv.NS, args ...string) string {
	t.Helper()
	return n.MustExec(t, append([]string{"tc"}, args...)...)
}

// String makes failures readable.
func (r pingResult) String() string {
	return fmt.Sprintf("%d sent, %d received, %d duplicates, min RTT %.3f ms", r.sent, r.received, r.duplicates, r.minRTT)
}
