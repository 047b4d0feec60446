package main

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/ctl"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

func TestAgentAnnouncesItselfAndRatchetctlListsIt(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	announced(c, false)
	h := c.Hosts[0]
	h.StartAgent()
	a, b := h.NewPod("primary-pod"), h.NewPod("pair-pod")
	a.MustAdd()
	b.MustAdd()
	key := c.Keys.Agent(h.Name)
	var rec store.AgentRecord
	if !testcluster.WaitFor(15*time.Second, func() bool {
		var err error
		rec, _, err = store.GetJSON[store.AgentRecord](context.Background(), c.KV, key)
		return err == nil && rec.Pods == 2
	}) {
		t.Fatalf("agent record %s = %+v, want 2 pods", key, rec)
	}
	if rec.Address != h.Addr || rec.Version == "" || rec.PID == 0 || rec.Links != 2 {
		t.Errorf("agent record = %+v, want address %s, a version, a PID, 2 link ends", rec, h.Addr)
	}
	var out, errOut strings.Builder
	code := ctl.Main([]string{"--etcd-endpoints", c.Etcd.URL, "--etcd-api", "v3", "--etcd-prefix", c.Prefix, "agents"},
		func(string) string { return "" }, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), h.Name) || !strings.Contains(out.String(), h.Addr) {
		t.Errorf("ratchetctl agents = %d:\n%s%s", code, out.String(), errOut.String())
	}
	a.MustDel()
	b.MustDel()
	h.KillAgent(syscall.SIGTERM)
	if !testcluster.WaitFor(10*time.Second, func() bool {
		_, err := c.KV.Get(context.Background(), key)
		return err != nil
	}) {
		t.Errorf("agent record left after SIGTERM")
	}
	if !testcluster.WaitFor(10*time.Second, func() bool { return len(h.AgentPIDs()) == 0 }) {
		t.Errorf("agent still runs after SIGTERM")
	}
	if _, err := os.Stat(h.Socket()); err == nil {
		t.Errorf("socket left after SIGTERM")
	}
	c.AssertNoLeftovers(a, b)
}
