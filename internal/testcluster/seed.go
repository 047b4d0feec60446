package testcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/announce"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// SeedLabelFile copies the seed label file scripts/<name> (primary.label,
// pair.label) to a temporary file with its addresses moved from the seed's
// 192.168.2.0/24 to the test range 192.0.2.0/24, and returns its path.
func SeedLabelFile(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(testenv.RepoFile("scripts/" + name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), "192.168.2.", "192.0.2.")), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SeedPair returns the seed's pair, primary-pod (in1, 192.0.2.100/24) and
// pair-pod (in2, 192.0.2.101/24): scripts/primary.label and pair.label
// parsed as the plugin does, on the test addresses of SeedLabelFile.
func SeedPair(t testing.TB) (primary, pair *metadata.Pod) {
	t.Helper()
	return seedPod(t, "primary.label"), seedPod(t, "pair.label")
}

func seedPod(t testing.TB, name string) *metadata.Pod {
	t.Helper()
	labels, err := metadata.ReadLabelFile(SeedLabelFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return parsePod(t, name, labels)
}

func parsePod(t testing.TB, what string, labels map[string]string) *metadata.Pod {
	t.Helper()
	p, err := metadata.Parse(labels, "eth0")
	if err != nil || p == nil {
		t.Fatalf("%s: not a ratchet pod: %v", what, err)
	}
	return p
}

// RouterChain returns the pods of testenv.RouterChainFile in its order (centosa,
// quagga-a, quagga-b, centosb), as announcer records them.
func RouterChain(t testing.TB) []*metadata.Pod {
	t.Helper()
	data, err := os.ReadFile(testenv.RepoFile(testenv.RouterChainFile))
	if err != nil {
		t.Fatal(err)
	}
	topo, err := announce.ParseTopology(data)
	if err != nil {
		t.Fatalf("%s: %v", testenv.RouterChainFile, err)
	}
	recs, err := topo.Records("eth0")
	if err != nil {
		t.Fatalf("%s: %v", testenv.RouterChainFile, err)
	}
	pods := make([]*metadata.Pod, len(recs))
	for i, r := range recs {
		pods[i] = parsePod(t, testenv.RouterChainFile+": "+r.Name, r.Labels)
	}
	return pods
}

// AnnounceSeedPair announces the two pods of SeedPair.
func (c *Cluster) AnnounceSeedPair() {
	c.t.Helper()
	primary, pair := SeedPair(c.t)
	c.Announce(primary)
	c.Announce(pair)
}

// AssertLinksPing fails t unless, for every link that a pod of specs
// declares, each end pings the other's address within d; pods[i] is the
// pod of specs[i].
func AssertLinksPing(t testing.TB, specs []*metadata.Pod, pods []*Pod, within time.Duration) {
	t.Helper()
	byName := map[string]*Pod{}
	for i, s := range specs {
		byName[s.Name] = pods[i]
	}
	for i, s := range specs {
		for _, l := range s.Links {
			assertPing(t, pods[i], byName[l.Peer], l.PeerIP, within)
			assertPing(t, byName[l.Peer], pods[i], l.IP, within)
		}
	}
}

// assertPing fails t unless from pings the address of cidr (to's end)
// within d.
func assertPing(t testing.TB, from, to *Pod, cidr string, within time.Duration) {
	t.Helper()
	addr, _, _ := strings.Cut(cidr, "/")
	if from == nil || to == nil {
		t.Errorf("ping %s: pod missing", addr)
		return
	}
	if !WaitFor(within, func() bool { return from.Ping(addr) == nil }) {
		t.Errorf("%s cannot ping %s (%s)\n%s\n%s", from.Name, addr, to.Name, from.H.LogTail(), to.H.LogTail())
	}
}
