package main

// Reliability suite, part 2: the plugin process SIGKILLed in the middle of
// ADD, as a runtime's timeout or an OOM kill would.

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// addKilled runs ADD of p with the ratchet binary itself, in p's host
// netns with the environment and stdin a runtime gives it, and SIGKILLs it
// `after` the pod's record appears in etcd (pairing under way). It returns
// the number of links in the pod's netns at the kill, -1 when ADD ended
// first.
func addKilled(t *testing.T, c *testcluster.Cluster, p *testcluster.Pod, after time.Duration) int {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.CNI.BinDir, "ratchet"))
	cmd.Env = p.RawEnv("ADD")
	cmd.Stdin = bytes.NewReader(p.Stdin())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := p.InHost(cmd.Start); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, err := store.GetPod(context.Background(), c.KV, c.Keys, "default", p.Name); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("ADD ended before pairing started: %v: %s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not recorded 30s after ADD started", p.Name)
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(after)
	select {
	case err := <-exited:
		t.Logf("ADD ended before the kill: %v: %s", err, out.String())
		return -1
	default:
	}
	_ = cmd.Process.Kill()
	<-exited
	return len(p.Links())
}

func TestPluginKilledMidAddLeavesNothingAfterDelAndPairRewires(t *testing.T) {
	for _, order := range []string{"del-then-readd", "readd-then-del"} {
		t.Run(order, func(t *testing.T) {
			c, _, hub, spoke := hubCluster(t, "v3")
			h := c.Hosts[0]
			spoke.MustAdd()
			after := between(20*time.Millisecond, 60*time.Millisecond)
			built := addKilled(t, c.Cluster, hub, after)
			claimed := countLinks(t, c.Cluster, func(r *store.LinkRecord) bool { return r.Builder == hub.RT.ContainerID })
			t.Logf("killed %v into pairing: %d links in the hub's netns, %d link records claimed by the dead ADD", after, built, claimed)
			hub2 := c.NewPod(h, "hub")
			if order == "del-then-readd" {
				hub.MustDel()
				if n := countLinks(t, c.Cluster, namesContainer(hub.RT.ContainerID)); n > 0 {
					t.Errorf("DEL of the killed ADD left %d link records naming its container\n%s", n, h.LogTail())
				}
				if n := leases(t, h); n != 1 {
					t.Errorf("%d leases after DEL of the killed ADD, want only the spoke's", n)
				}
				if links := hub.Links(); len(links) > 0 {
					t.Errorf("DEL of the killed ADD left links %v in its netns", links)
				}
				c.AssertNoStrayLinks(spoke)
			}
			start := time.Now()
			took, err := bounded(t, "re-ADD", hangLimit, hub2.Add)
			if err != nil {
				t.Fatalf("re-ADD after the kill: %v\n%s", err, h.LogTail())
			}
			if order == "readd-then-del" {
				hub.MustDel()
			}
			if !testcluster.WaitFor(30*time.Second, func() bool { return countLinks(t, c.Cluster, isWired) == manyLinks }) {
				t.Errorf("%d of %d links wired after the re-ADD\n%s", countLinks(t, c.Cluster, isWired), manyLinks, h.LogTail())
			}
			t.Logf("re-ADD took %v; all links wired %v after it started", took, time.Since(start))
			if n := len(hub2.Links()); n != manyLinks+1 {
				t.Errorf("re-added hub has %d links, want eth0 and %d", n, manyLinks)
			}
			if err := hub2.Ping("198.18.39.2"); err != nil {
				t.Errorf("re-added hub cannot reach the spoke: %v", err)
			}
			hub2.MustDel()
			spoke.MustDel()
			c.AssertNoLeftovers(hub, hub2, spoke)
		})
	}
}
