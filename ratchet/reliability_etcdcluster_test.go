package main

// Reliability suite, part 4: ratchet on a 3-member etcd that loses a member.

import (
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestEtcdMemberLostMidChainPairingGoesOn(t *testing.T) {
	for _, api := range apis {
		t.Run(api, func(t *testing.T) {
			ec := testenv.StartEtcdCluster(t, 3)
			c := testcluster.NewWithEtcd(t, api, 2, ec.URLs)
			specs := chainPods()
			pods := make([]*testcluster.Pod, len(specs))
			for i, m := range specs {
				c.Announce(m)
				pods[i] = c.NewPod(c.Hosts[i/2], m.Name) // centosa, quagga-a on host 0
			}
			// quagga-a first: its cross-host link to quagga-b waits in
			// its host's agent while the member goes.
			pods[1].MustAdd()
			pods[0].MustAdd()
			lead := ec.Leader()
			if lead < 0 {
				t.Fatal("etcd cluster has no leader")
			}
			start := time.Now()
			ec.Stop(lead)
			t.Logf("stopped member %d (the leader) in %v", lead, time.Since(start))
			pods[2].MustAdd()
			pods[3].MustAdd()
			added := time.Now()
			pings := []struct {
				from int
				to   string
			}{{0, "192.0.2.2"}, {1, "192.0.2.1"}, {1, "203.0.113.2"}, {2, "203.0.113.1"}, {2, "192.0.2.6"}, {3, "192.0.2.5"}}
			for _, p := range pings {
				if !testcluster.WaitFor(15*time.Second, func() bool { return pods[p.from].Ping(p.to) == nil }) {
					t.Errorf("%s cannot ping %s\n%s\n%s", specs[p.from].Name, p.to, c.Hosts[0].LogTail(), c.Hosts[1].LogTail())
				}
			}
			t.Logf("every link answers ping %v after the last ADD", time.Since(added))
			for _, p := range pods {
				if err := p.Check(); err != nil {
					t.Errorf("CHECK %s: %v", p.Name, err)
				}
			}
			for _, p := range pods {
				p.MustDel()
			}
			c.AssertNoLeftovers(pods...)
		})
	}
}
