// Command demo is ratchet's main job on one machine (`make demo`, as root):
// two simulated hosts (network namespaces joined by an underlay), the first
// ratchet's 4-pod router chain across them, announced with `announcer`,
// each pod added through a real CNI client (cnitool), the state shown with
// `ratchetctl`, a ping from one end of the chain to the other, the middle
// link impaired, taken down and up with `ratchetctl link`, then every
// pod deleted and the machine checked to be as it was. It cleans up also
// when interrupted.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := newDemo()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	start := time.Now()
	err = d.run(ctx)
	d.cleanup()
	if err == nil {
		err = d.verifyClean()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED after %s: %v\n", time.Since(start).Round(time.Millisecond), err)
		os.Exit(1)
	}
	fmt.Printf("\ndemo passed in %s: chain wired and pingable end to end, nothing left behind\n", time.Since(start).Round(time.Millisecond))
}

func (d *demo) run(ctx context.Context) error {
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"build the reference CNI plugins and cnitool", d.buildPlugins},
		{"start etcd", d.startEtcd},
		{"create two simulated hosts joined by an underlay (198.51.100.0/24)", d.makeHosts},
		{"announce the router chain topology (announcer --file)", d.announce},
		{"add the four pods through cnitool (ratchet → bridge + pairing)", d.addPods},
		{"show the state (ratchetctl status)", d.status},
		{"write the topology picture (ratchetctl topology -o dot)", d.topology},
		{"route along the chain and ping centosa → centosb end to end", d.ping},
		{"impair the cross-host link: loss, a rate limit, a delay (ratchetctl link set)", d.impair},
		{"take the middle link down and up, clear its impairment (ratchetctl link down|up|clear)", d.linkDownUp},
		{"delete every pod through cnitool", d.delPods},
		{"show the state again (ratchetctl status)", d.status},
	}
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		fmt.Printf("\n==> [%d/%d] %s\n", i+1, len(steps), s.what)
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		fmt.Printf("    (%s)\n", time.Since(t).Round(time.Millisecond))
	}
	return nil
}

// repoRoot is the module root: the demo runs from it (make demo).
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}
