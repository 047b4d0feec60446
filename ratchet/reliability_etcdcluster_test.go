package main

// Reliability suite, part 4: ratchet on a 3-member etcd that loses a member.

import (
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestEtcdMemberLostMidChainPairingGoesOn(t *testing.T) {
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		ec := testenv.StartEtcdCluster(t, 3)
		c := testcluster.NewWithEtcd(t, api, 2, ec.URLs)
		specs := testcluster.RouterChain(t)
		pods := make([]*testcluster.Pod, len(specs))
		for i, m := range specs {
			c.Announce(m)
			pods[i] = c.NewPod(c.Hosts[i/2], m.Name) // centosa, quagga-a on host 0
		}
		// quagga-a first: its cross-host link to quagga-b waits in its
		// host's agent while the member goes.
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
		testcluster.AssertLinksPing(t, specs, pods, 15*time.Second)
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
