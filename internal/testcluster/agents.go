package testcluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
)

// agentDir gives a host a short directory for its agent's socket (a unix
// socket path has at most 107 bytes; test temp dirs can be longer).
func agentDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "rtd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Socket is the host's agent socket (the netconf's agent.socket).
func (h *Host) Socket() string { return filepath.Join(h.AgentDir, "ratchetd.sock") }

// AgentPIDs lists the ratchetd processes serving the host's socket.
func (h *Host) AgentPIDs() []int {
	return AgentPIDs(h.Socket())
}

// AgentPIDs lists the ratchetd processes whose command line names socket.
func AgentPIDs(socket string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == "ratchetd" && strings.Contains(string(cmd), "\x00"+socket+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// KillAgent sends sig to the host's agents and, for SIGKILL, waits until
// they are gone (up to 10s).
func (h *Host) KillAgent(sig syscall.Signal) {
	for _, pid := range h.AgentPIDs() {
		_ = syscall.Kill(pid, sig)
	}
	if sig == syscall.SIGKILL {
		WaitFor(10*time.Second, func() bool { return len(h.AgentPIDs()) == 0 })
	}
}

// KillAgents SIGKILLs the agents of the cluster's hosts (for t.Cleanup).
func (c *Cluster) KillAgents() {
	for _, h := range c.Hosts {
		h.KillAgent(syscall.SIGKILL)
	}
}

// StartAgent runs ratchetd for the host by hand (as a DaemonSet would: not
// on demand) in the host's netns, with the host's netconf, and waits until
// it answers and has announced itself in etcd (its connection is up). The
// host's cleanup kills it.
func (h *Host) StartAgent() {
	t := h.c.t
	t.Helper()
	conf := filepath.Join(h.AgentDir, "started.netconf")
	if err := os.WriteFile(conf, h.Netconf(nil), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(h.c.CNI.BinDir, "ratchetd")
	err := h.NS.Do(func(ns.NetNS) error {
		cmd := exec.Command(bin, "--socket", h.Socket(), "--netconf", conf)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		go func() { _ = cmd.Wait() }()
		return nil
	})
	if err != nil {
		t.Fatalf("start ratchetd: %v", err)
	}
	client := agentapi.NewClient(h.Socket(), time.Second)
	if !WaitFor(10*time.Second, func() bool {
		return client.Call(context.Background(), agentapi.PathPing, struct{}{}, nil) == nil
	}) {
		t.Fatalf("ratchetd on %s does not answer\n%s", h.Name, h.LogTail())
	}
	if !WaitFor(10*time.Second, func() bool {
		_, err := h.c.KV.Get(context.Background(), h.c.Keys.Agent(h.Name))
		return err == nil
	}) {
		t.Fatalf("ratchetd on %s does not announce itself\n%s", h.Name, h.LogTail())
	}
}
