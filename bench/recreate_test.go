package bench

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// recreateRounds is how many times (9) moves the peer to another host.
const recreateRounds = 10

// probeEvery is the interval of the ICMP probes that time the first reply.
const probeEvery = 5 * time.Millisecond

// BenchmarkPeerRecreatedOnAnotherHost measures (9): the seed pair wired
// across hosts, then, each round, the peer (pair-pod) deleted on its host
// and re-created with the same name on the other one while the surviving
// pod (primary-pod, host 0) stays: the time from the re-created pod's ADD
// start to the first echo reply the survivor gets over the link, probing
// every 5 ms from that ADD's start (traffic throughout the move). Where the
// time goes: when the survivor's vxlan end points at the new host, when the
// re-created pod's own end is up, when its ADD returned, all from that
// ADD's start, and from both ends up to the first reply (neighbour
// resolution: an ARP request lost while an end was missing is retried by
// the kernel a second later).
func BenchmarkPeerRecreatedOnAnotherHost(b *testing.B) {
	for range b.N {
		c := testcluster.New(b, "v3", 3)
		c.AnnounceSeedPair()
		survivor := c.Hosts[0].NewPod("primary-pod")
		survivor.MustAdd()
		probe, err := newProber(survivor.Netns)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { probe.Close() })
		peer := c.Hosts[1].NewPod("pair-pod")
		peer.MustAdd()
		if _, err := firstReply(probe, 10*time.Second); err != nil {
			b.Fatalf("seed pair across hosts never pinged: %v\n%s", err, c.Hosts[0].LogTail())
		}
		var toPing, addRet, toRepoint, toNewEnd, bothToPing []time.Duration
		lost := 0
		for r := range recreateRounds {
			peer.MustDel()
			peer = c.Hosts[1+(r+1)%2].NewPod("pair-pod")
			start := time.Now()
			type result struct {
				err error
				d   time.Duration
			}
			added := make(chan result, 1)
			go func() {
				err := peer.Add()
				added <- result{err, time.Since(start)}
			}()
			repointed, newEnd := make(chan time.Duration, 1), make(chan time.Duration, 1)
			go func() { repointed <- waitRemote(survivor.Netns, "in1", peer.H.Addr, start, 10*time.Second) }()
			go func() { newEnd <- waitRemote(peer.Netns, "in2", survivor.H.Addr, start, 10*time.Second) }()
			reply, perr := firstReply(probe, 10*time.Second)
			res := <-added
			dr, de := <-repointed, <-newEnd
			if dr > 0 {
				toRepoint = append(toRepoint, dr)
			}
			if de > 0 {
				toNewEnd = append(toNewEnd, de)
			}
			if dr > 0 && de > 0 && perr == nil {
				bothToPing = append(bothToPing, reply.Sub(start)-max(dr, de))
			}
			if res.err != nil {
				b.Fatalf("ADD of the re-created pair-pod: %v\n%s", res.err, peer.H.LogTail())
			}
			addRet = append(addRet, res.d)
			if perr != nil {
				lost++
				b.Logf("round %d: %v", r, perr)
				continue
			}
			toPing = append(toPing, reply.Sub(start))
		}
		if len(toPing) > 0 {
			m, p95 := stats(toPing)
			record(row{Order: 90, Name: "9. peer re-created on another host: its ADD start → first ping reply", Median: ms(m), P95: ms(p95),
				Target: "≤ 1 s", Met: met(m <= time.Second && lost == 0), N: len(toPing)})
		}
		if len(toRepoint) > 0 {
			m, p95 := stats(toRepoint)
			record(row{Order: 91, Name: "9. that ADD's start → survivor's vxlan end up towards the new host", Median: ms(m), P95: ms(p95), N: len(toRepoint)})
		}
		if len(toNewEnd) > 0 {
			m, p95 := stats(toNewEnd)
			record(row{Order: 92, Name: "9. that ADD's start → the re-created pod's own vxlan end up", Median: ms(m), P95: ms(p95), N: len(toNewEnd)})
		}
		if len(bothToPing) > 0 {
			m, p95 := stats(bothToPing)
			record(row{Order: 93, Name: "9. both ends up → that first ping reply", Median: ms(m), P95: ms(p95), N: len(bothToPing)})
		}
		ma, pa := stats(addRet)
		record(row{Order: 94, Name: "9. that re-created pod's ADD (start → return)", Median: ms(ma), P95: ms(pa), N: len(addRet)})
		record(row{Order: 95, Name: "9. rounds without a reply within 10 s", Value: fmt.Sprintf("%d/%d", lost, recreateRounds), Target: "0", Met: met(lost == 0)})
		survivor.MustDel()
		peer.MustDel()
		c.AssertNothingLeft()
	}
}

// firstReply probes the seed's pair-pod address (192.0.2.101) from p until
// the first reply, for at most d.
func firstReply(p *prober, d time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return p.firstReply(ctx, "192.0.2.101", probeEvery)
}

// waitRemote polls (every millisecond, netlink) until ifname in the netns at
// path is a vxlan end that is up and points at remote, and returns how long
// after start that was; 0 if not within d.
func waitRemote(path, ifname, remote string, start time.Time, d time.Duration) time.Duration {
	h, err := netnsHandle(path)
	if err != nil {
		return 0
	}
	defer h.Close()
	want := net.ParseIP(remote)
	for time.Since(start) < d {
		l, err := h.LinkByName(ifname)
		if err == nil {
			if v, ok := l.(*netlink.Vxlan); ok && v.Group.Equal(want) && l.Attrs().Flags&net.FlagUp != 0 {
				return time.Since(start)
			}
		}
		time.Sleep(time.Millisecond)
	}
	return 0
}
