package pairing

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// testManager is a Manager over a minimal netconf, with no store or sources:
// enough for the pure logic.
func testManager(t *testing.T) *Manager {
	t.Helper()
	conf, err := config.Load([]byte(`{"cniVersion":"1.0.0","name":"net","host":{"name":"h1"},"delegates":[{"type":"bridge"}]}`))
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return &Manager{conf: conf, log: slog.New(slog.DiscardHandler), keys: store.Keys{Prefix: conf.Etcd.Prefix}}
}

// mirror is link l of owner as seen from its peer.
func mirror(owner string, l metadata.Link) metadata.Link {
	return metadata.Link{Peer: owner, IfName: l.PeerIfName, IP: l.PeerIP, PeerIfName: l.IfName, PeerIP: l.IP, MTU: l.MTU}
}

func TestNewLinkRecordIsTheSameFromBothEnds(t *testing.T) {
	for _, tc := range []struct {
		name, owner string
		link        metadata.Link
		wantA       string // "pod.ifname" of end A
	}{
		{"declarer sorts first", "a", metadata.Link{Peer: "b", IfName: "in1", IP: "10.0.0.1/24", PeerIfName: "in2", PeerIP: "10.0.0.2/24"}, "a.in1"},
		{"declarer sorts last", "zeta", metadata.Link{Peer: "alpha", IfName: "in1", IP: "10.0.0.1/24", PeerIfName: "in9", MTU: 9000}, "alpha.in9"},
		{"pod name is a prefix", "ab", metadata.Link{Peer: "a", IfName: "x", PeerIfName: "y"}, "a.y"},
		{"same ifname on both ends", "b", metadata.Link{Peer: "a", IfName: "in1", IP: "10.0.0.2/24", PeerIfName: "in1"}, "a.in1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			decl := newLinkRecord("ns", tc.owner, tc.link, true)
			exp := newLinkRecord("ns", tc.link.Peer, mirror(tc.owner, tc.link), false)
			if decl.ID != exp.ID {
				t.Errorf("IDs differ: %q from the declarer, %q from the peer", decl.ID, exp.ID)
			}
			if decl.A != exp.A || decl.B != exp.B {
				t.Errorf("ends differ:\n declarer %+v / %+v\n peer     %+v / %+v", decl.A, decl.B, exp.A, exp.B)
			}
			if got := decl.A.Pod + "." + decl.A.IfName; got != tc.wantA {
				t.Errorf("end A = %s, want %s", got, tc.wantA)
			}
			if decl.Declarer != tc.owner || exp.Declarer != tc.owner {
				t.Errorf("declarer = %q / %q, want %q from both", decl.Declarer, exp.Declarer, tc.owner)
			}
			if decl.ID != store.LinkID(tc.owner, tc.link.IfName, tc.link.Peer, tc.link.PeerIfName) {
				t.Errorf("ID %q is not store.LinkID", decl.ID)
			}
			for _, r := range []store.LinkRecord{decl, exp} {
				if r.State != store.LinkPending || r.Namespace != "ns" || r.MTU != tc.link.MTU || r.Updated.IsZero() {
					t.Errorf("record %+v: want pending in ns with the link's MTU and a time", r)
				}
			}
			mine, _ := decl.EndsOf(tc.owner)
			if mine.IfName != tc.link.IfName || mine.IP != tc.link.IP {
				t.Errorf("owner's end %+v, want ifname %s ip %s", mine, tc.link.IfName, tc.link.IP)
			}
		})
	}
}

func TestEndsAndInvolves(t *testing.T) {
	rec := store.LinkRecord{A: store.LinkEnd{Pod: "a", IfName: "in1"}, B: store.LinkEnd{Pod: "b", IfName: "in2"}}
	for _, tc := range []struct {
		pod         string
		mine, peer  *store.LinkEnd
		wantInvolve bool
	}{
		{"a", &rec.A, &rec.B, true},
		{"b", &rec.B, &rec.A, true},
		{"c", &rec.B, &rec.A, false},
	} {
		mine, peer := rec.EndsOf(tc.pod)
		if tc.wantInvolve && (mine != tc.mine || peer != tc.peer) {
			t.Errorf("ends(%s) = %s/%s, want pointers to its own end and the other", tc.pod, mine.Pod, peer.Pod)
		}
		if got := rec.Involves(tc.pod); got != tc.wantInvolve {
			t.Errorf("involves(%s) = %v, want %v", tc.pod, got, tc.wantInvolve)
		}
	}
	mine, _ := rec.EndsOf("b")
	mine.Up = true
	if !rec.B.Up {
		t.Error("ends does not return pointers into the record")
	}
}

func TestK8sArgs(t *testing.T) {
	for _, tc := range []struct{ args, ns, name string }{
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=router-0;K8S_POD_INFRA_CONTAINER_ID=abc", "prod", "router-0"},
		{"K8S_POD_NAME=p", "", "p"},
		{"K8S_POD_NAMESPACE=ns", "ns", ""},
		{"K8S_POD_NAME=a=b", "", "a=b"},
		{"", "", ""},
		{"garbage;;=x", "", ""},
	} {
		ns, name := k8sArgs(tc.args)
		if ns != tc.ns || name != tc.name {
			t.Errorf("k8sArgs(%q) = %q, %q; want %q, %q", tc.args, ns, name, tc.ns, tc.name)
		}
	}
}

func TestParallelRunsAllOnBoundedWorkersAndJoinsErrors(t *testing.T) {
	for _, n := range []int{0, 1, 3, workers, 5 * workers} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var seen = make([]atomic.Int32, n)
			var running, peak atomic.Int32
			err := parallel(n, func(i int) error {
				cur := running.Add(1)
				defer running.Add(-1)
				for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
				}
				seen[i].Add(1)
				time.Sleep(5 * time.Millisecond)
				if i%3 == 0 {
					return fmt.Errorf("job %d failed", i)
				}
				return nil
			})
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Errorf("job %d ran %d times", i, c)
				}
			}
			if p := peak.Load(); p > workers {
				t.Errorf("%d jobs ran at once, want at most %d", p, workers)
			}
			if p := peak.Load(); n >= 2*workers && p < 2 {
				t.Errorf("jobs ran one at a time (peak %d)", p)
			}
			wantErrs := (n + 2) / 3
			var got []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				got = j.Unwrap()
			} else if err != nil {
				got = []error{err}
			}
			if len(got) != wantErrs {
				t.Errorf("%d errors returned (%v), want %d", len(got), err, wantErrs)
			}
		})
	}
}
