package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// dockerCluster is a one-host cluster whose pods are Docker containers
// labelled like the seed's.
func dockerCluster(t *testing.T, api string) (*testcluster.Cluster, *testenv.Docker) {
	c := testcluster.New(t, api, 1)
	d := testenv.StartDocker(t)
	c.Metadata = []string{"docker", "etcd"}
	c.DockerHost = d.Host
	return c, d
}

func TestSeedPairFromDockerLabelsInBothOrders(t *testing.T) {
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		c, d := dockerCluster(t, api)
		for _, order := range []string{"primary-first", "pair-first"} {
			t.Run(order, func(t *testing.T) {
				idA, pidA := d.RunContainer(t, testcluster.SeedLabelFile(t, "primary.label"))
				idB, pidB := d.RunContainer(t, testcluster.SeedLabelFile(t, "pair.label"))
				a := c.Hosts[0].ContainerPod("primary-pod", idA, pidA)
				b := c.Hosts[0].ContainerPod("pair-pod", idB, pidB)
				first, second := ordered(order, a, b)
				first.MustAdd()
				second.MustAdd()
				assertSeedPairWired(t, a, b)
				second.MustDel()
				if !first.EndParked(ifOf(first)) {
					t.Errorf("DEL of %s: the peer's end is not kept without carrier", second.Name)
				}
				first.MustDel()
				c.AssertNothingLeft()
			})
		}
	})
}

func TestUnlabelledContainerNeverTouchesEtcd(t *testing.T) {
	c, d := dockerCluster(t, "v3")
	id, err := d.Run(t, "run", "-d", "--net=none", d.Image, "sleep", "100000")
	if err != nil {
		t.Fatal(err)
	}
	pidOut, err := d.Run(t, "inspect", "-f", "{{.State.Pid}}", id)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(pidOut, &pid)
	p := c.Hosts[0].ContainerPod("plain", id, pid)
	c.Hosts[0].StartAgent() // the agent's one connection is not the pod's
	before := c.Hosts[0].Fwd.Conns.Load()
	p.MustAdd()
	p.MustDel()
	if n := c.Hosts[0].Fwd.Conns.Load() - before; n != 0 {
		t.Errorf("an unlabelled container opened %d etcd connections", n)
	}
	c.AssertNothingLeft()
}

// TestDockerUnreachableIsAClearErrorAndRollsBack: a Docker socket that is
// there but refuses connections may hide a ratchet pod: code 11.
func TestDockerUnreachableIsAClearErrorAndRollsBack(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	c.Metadata = []string{"docker"}
	c.DockerHost = testenv.DeadDockerHost(t)
	p := c.Hosts[0].NewPod("any")
	err := p.Add()
	if err == nil {
		t.Fatal("ADD with docker unreachable succeeded")
	}
	if code := cniCode(t, err); code != types.ErrTryAgainLater || !strings.Contains(err.Error(), "docker at "+c.DockerHost+" unreachable") {
		t.Errorf("error (code %d) %v, want code 11 naming the docker host", code, err)
	}
	if links := p.Links(); len(links) > 0 {
		t.Errorf("pod netns has links %v", links)
	}
	c.AssertNothingLeft()
}

// TestNoDockerSocketMeansNoDockerPods: on a node without Docker (the common
// containerd node), the docker source is passed over; a plain pod's ADD
// succeeds with the default metadata list.
func TestNoDockerSocketMeansNoDockerPods(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	c.Metadata = []string{"docker"}
	c.DockerHost = "unix://" + filepath.Join(t.TempDir(), "no-docker.sock")
	p := c.Hosts[0].NewPod("any")
	p.MustAdd()
	p.MustDel()
	c.AssertNothingLeft()
}

// TestDockerRunCustomScriptPairsTheSeedPods runs the seed's flow through
// scripts/docker-run-custom.sh on a simulated host, in both arrival orders:
// the first side's app waits in the background, the second side's app pings
// the first over the link (the link is up once the second ADD returned).
func TestDockerRunCustomScriptPairsTheSeedPods(t *testing.T) {
	sides := map[string]struct{ label, pod, ip string }{
		"primary": {"primary.label", "primary-pod", "192.0.2.100"},
		"pair":    {"pair.label", "pair-pod", "192.0.2.101"},
	}
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		for _, first := range []string{"pair", "primary"} {
			second := map[string]string{"pair": "primary", "primary": "pair"}[first]
			t.Run(first+"-first", func(t *testing.T) {
				runScriptPair(t, api, sides[first], sides[second])
			})
		}
	})
}

func runScriptPair(t *testing.T, api string, first, second struct{ label, pod, ip string }) {
	c, d := dockerCluster(t, api)
	h := c.Hosts[0]
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "10-ratchet.conf"), h.Netconf(nil), 0o600); err != nil {
		t.Fatal(err)
	}
	script := func(label string, args ...string) *exec.Cmd {
		full := append([]string{"netns", "exec", h.NS.Name, filepath.Join("..", "scripts", "docker-run-custom.sh"),
			"--label-file", testcluster.SeedLabelFile(t, label)}, args...)
		cmd := exec.Command("ip", full...)
		cmd.Env = append(os.Environ(), "CNI_PATH="+c.CNI.BinDir, "NETCONFPATH="+confDir,
			"DOCKER="+d.CLI(), "DOCKER_HOST="+d.Host, "INFRA_IMAGE="+d.Image)
		return cmd
	}
	waiter := testenv.UniqueName("app-")
	bg := script(first.label, "--rm", "--name", waiter, d.Image, "sleep", "60")
	var bgOut strings.Builder
	bg.Stdout, bg.Stderr = &bgOut, &bgOut
	if err := bg.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = bg.Wait() }()
	t.Cleanup(func() { _, _ = d.Run(t, "kill", waiter); wg.Wait() })
	if !testcluster.WaitFor(30*time.Second, func() bool {
		_, _, err := store.GetPod(context.Background(), c.KV, c.Keys, "default", first.pod)
		return err == nil
	}) {
		t.Fatalf("%s never recorded:\n%s", first.pod, bgOut.String())
	}
	out, err := script(second.label, "--rm", d.Image, "ping", "-c", "2", "-W", "2", first.ip).CombinedOutput()
	if err != nil {
		t.Fatalf("%s side: %v\n%s\n%s", second.pod, err, out, h.LogTail())
	}
	if !strings.Contains(string(out), "2 packets received") {
		t.Errorf("%s's ping did not get through:\n%s", second.pod, out)
	}
	if _, err := d.Run(t, "kill", waiter); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if code := bg.ProcessState.ExitCode(); code != 137 && code != 0 {
		t.Errorf("%s side exited %d:\n%s", first.pod, code, bgOut.String())
	}
	if left, _ := d.Run(t, "ps", "-aq"); left != "" {
		t.Errorf("containers left: %s", left)
	}
	c.AssertNothingLeft()
}
