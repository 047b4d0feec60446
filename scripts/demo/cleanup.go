package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cleanup undoes everything the demo made, whatever step it reached: pods
// still added are deleted through the CNI client, then the netns, the
// etcd records, etcd itself and the work dir go.
func (d *demo) cleanup() {
	fmt.Println("\n==> clean up")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(d.pods) - 1; i >= 0; i-- {
		if p := d.pods[i]; p.added {
			if _, err := d.cnitool(ctx, "del", p); err != nil {
				fmt.Println("    DEL", p.name, "failed:", err)
			}
		}
	}
	d.stopAgents()
	for _, p := range d.pods {
		_, _ = sh(ctx, nil, "ip", "netns", "del", p.netns)
	}
	for _, h := range d.hosts {
		if h.proxy != nil {
			h.proxy.Close()
		}
		_, _ = sh(ctx, nil, "ip", "netns", "del", h.netns)
	}
	if d.etcdURL != "" && os.Getenv("RATCHET_ETCD") != "" {
		_, _ = sh(ctx, nil, filepath.Join(d.bin, "ratchetctl"), append(d.etcdFlags(), "delete", "--all", "--yes")...)
	}
	if d.etcd != nil {
		d.etcd.Close()
	}
	_ = os.RemoveAll(d.work)
}

// verifyClean checks that the machine is as the demo found it.
func (d *demo) verifyClean() error {
	var left []string
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "rdemo-"+d.id) {
			left = append(left, "netns "+strings.Fields(l)[0])
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	if strings.Contains(string(out), d.id) {
		left = append(left, "links in the host netns")
	}
	if pids := d.agents(); len(pids) > 0 {
		left = append(left, fmt.Sprintf("agent processes %v", pids))
	}
	if _, err := os.Stat(d.work); err == nil {
		left = append(left, "work dir "+d.work)
	}
	fmt.Printf("    leftovers: %d (netns, links, processes, files; the records were counted above)\n", len(left))
	if len(left) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(left, ", "))
	}
	return nil
}

// agents lists the demo hosts' ratchetd processes (their command lines name
// a socket under the work dir).
func (d *demo) agents() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(cmd), "ratchetd\x00") && strings.Contains(string(cmd), d.work) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopAgents stops the agents the plugin started on demand (they would
// exit by themselves a few seconds after the last pod's DEL).
func (d *demo) stopAgents() {
	for _, pid := range d.agents() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	for deadline := time.Now().Add(10 * time.Second); len(d.agents()) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
}
