package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// rounds is how many ADD/DEL rounds the per-operation measures take.
const rounds = 50

func timeIt(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

// BenchmarkDelegation measures (1) a bare bridge + host-local ADD and DEL
// against (2) ratchet's ADD and DEL of a non-ratchet pod with the same
// master, interleaved in one run. A first ratchet round, not counted,
// starts the host's agent on demand.
func BenchmarkDelegation(b *testing.B) {
	for range b.N {
		c := testcluster.New(b, "v3", 1)
		h := c.Hosts[0]
		bare := c.CNI.Conf(b, bareConf(h))
		pod := h.NewPod("plain")
		pod.RT.Args = [][2]string{{"IgnoreUnknown", "1"}}
		pod.MustAdd()
		pod.MustDel()
		var addBare, delBare, addRat, delRat []time.Duration
		for i := range rounds {
			order := []*libcni.NetworkConfig{bare, pod.Conf}
			if i%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, conf := range order {
				a, err := timeIt(func() error {
					return pod.InHost(func() error { _, err := c.CNI.Add(context.Background(), conf, pod.RT); return err })
				})
				if err != nil {
					b.Fatal(err)
				}
				d, err := timeIt(func() error {
					return pod.InHost(func() error { return c.CNI.Del(context.Background(), conf, pod.RT) })
				})
				if err != nil {
					b.Fatal(err)
				}
				if conf == bare {
					addBare, delBare = append(addBare, a), append(delBare, d)
				} else {
					addRat, delRat = append(addRat, a), append(delRat, d)
				}
			}
		}
		mab, pab := stats(addBare)
		mdb, pdb := stats(delBare)
		mar, par := stats(addRat)
		mdr, pdr := stats(delRat)
		record(row{Order: 10, Name: "1. bare bridge ADD", Median: ms(mab), P95: ms(pab), N: rounds})
		record(row{Order: 11, Name: "1. bare bridge DEL", Median: ms(mdb), P95: ms(pdb), N: rounds})
		ra, rd := float64(mar)/float64(mab), float64(mdr)/float64(mdb)
		record(row{Order: 20, Name: "2. ratchet ADD, non-ratchet pod (thin plugin + agent)", Median: ms(mar), P95: ms(par), Ratio: ra, Target: "≤ 1.3×", Met: met(ra <= 1.3), N: rounds})
		record(row{Order: 21, Name: "2. ratchet DEL, non-ratchet pod (thin plugin + agent)", Median: ms(mdr), P95: ms(pdr), Ratio: rd, Target: "≤ 1.3×", Met: met(rd <= 1.3), N: rounds})
		c.AssertNothingLeft()
	}
}

// bareConf is the host's master delegate on its own, as a plain netconf.
func bareConf(h *testcluster.Host) []byte {
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "bare", "type": "bridge", "bridge": h.Bridge, "isGateway": true,
		"ipam": map[string]any{"type": "host-local", "subnet": h.Subnet, "dataDir": filepath.Join(h.Dir, "ipam")},
	}
	b, _ := json.Marshal(conf)
	return b
}

// BenchmarkSameHostPair measures (3) the ADD that completes a same-host
// pair (it builds the veth for both before returning) against a bare
// bridge ADD, and when both ends are up.
func BenchmarkSameHostPair(b *testing.B) {
	for range b.N {
		c := testcluster.New(b, "v3", 1)
		h := c.Hosts[0]
		c.AnnounceSeedPair()
		bare := c.CNI.Conf(b, bareConf(h))
		var addBare, addPair, linkUp []time.Duration
		for range rounds / 2 {
			p, q := h.NewPod("primary-pod"), h.NewPod("pair-pod")
			d, err := timeIt(func() error {
				return q.InHost(func() error { _, err := c.CNI.Add(context.Background(), bare, q.RT); return err })
			})
			if err != nil {
				b.Fatal(err)
			}
			addBare = append(addBare, d)
			if err := q.InHost(func() error { return c.CNI.Del(context.Background(), bare, q.RT) }); err != nil {
				b.Fatal(err)
			}
			q.MustAdd()
			start := time.Now()
			p.MustAdd()
			addPair = append(addPair, time.Since(start))
			if !linkIsUp(p.Netns, "in1") || !linkIsUp(q.Netns, "in2") {
				b.Fatal("link not up after the completing ADD returned")
			}
			linkUp = append(linkUp, time.Since(start))
			p.MustDel()
			q.MustDel()
		}
		mb, _ := stats(addBare)
		mp2, pp := stats(addPair)
		mu, pu := stats(linkUp)
		r := float64(mp2) / float64(mb)
		record(row{Order: 30, Name: "3. ratchet ADD completing a same-host pair", Median: ms(mp2), P95: ms(pp), Ratio: r, Target: "≤ 1.5×", Met: met(r <= 1.5), N: len(addPair)})
		record(row{Order: 31, Name: "3. that ADD's start → both ends up", Median: ms(mu), P95: ms(pu), Target: "≤ 25 ms", Met: met(mu <= 25*time.Millisecond), N: len(linkUp)})
		c.AssertNothingLeft()
	}
}

// linkIsUp reports whether ifname is up in the netns at path (netlink, no
// process: fast enough to poll).
func linkIsUp(path, ifname string) bool {
	h, err := netnsHandle(path)
	if err != nil {
		return false
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	return err == nil && l.Attrs().Flags&1 != 0 // IFF_UP
}

func netnsHandle(path string) (*netlink.Handle, error) {
	n, err := ns.GetNS(path)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	return netlink.NewHandleAt(vnetns.NsHandle(n.Fd()))
}

// BenchmarkCrossHostCompletion measures (4) the time from the second side's
// ADD return until the first side's agent (a completer process before the
// agent) has its vxlan end up.
func BenchmarkCrossHostCompletion(b *testing.B) {
	for range b.N {
		c := testcluster.New(b, "v3", 2)
		c.AnnounceSeedPair()
		var lag []time.Duration
		for range 20 {
			p, q := c.Hosts[0].NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
			p.MustAdd()
			q.MustAdd()
			returned := time.Now()
			for !linkIsUp(p.Netns, "in1") {
				if time.Since(returned) > 10*time.Second {
					b.Fatalf("agent never built its end\n%s", c.Hosts[0].LogTail())
				}
				time.Sleep(200 * time.Microsecond)
			}
			lag = append(lag, time.Since(returned))
			p.MustDel()
			q.MustDel()
		}
		m, p95 := stats(lag)
		record(row{Order: 40, Name: "4. cross-host: 2nd ADD return → 1st side's end up (by its agent)", Median: ms(m), P95: ms(p95), Target: "≤ 100 ms", Met: met(m <= 100*time.Millisecond), N: len(lag)})
		c.AssertNothingLeft()
	}
}

func countWired(b *testing.B, c *testcluster.Cluster) int {
	links, _, err := store.ListLinks(context.Background(), c.KV, c.Keys, "default")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, l := range links {
		if l.Value.State == store.LinkWired {
			n++
		}
	}
	return n
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
