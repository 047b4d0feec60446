package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// crossLink is the router chain's link across hosts (a vxlan).
var crossLink = store.LinkID("quagga-a", "in2", "quagga-b", "in1")

// ratchetctl runs ratchetctl with the demo's etcd flags and shows its
// output.
func (d *demo) ratchetctl(ctx context.Context, args ...string) error {
	fmt.Printf("    $ ratchetctl %s\n", strings.Join(args, " "))
	out, err := sh(ctx, nil, filepath.Join(d.bin, "ratchetctl"), append(d.etcdFlags(), args...)...)
	fmt.Print(indent(out))
	return err
}

// waitApplied waits until both agents recorded how they applied the
// cross-host link's impairment (ok says when it is as wanted).
func (d *demo) waitApplied(ctx context.Context, ok func(a, b string) bool) (store.LinkRecord, error) {
	kv, err := d.store()
	if err != nil {
		return store.LinkRecord{}, err
	}
	defer kv.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, _, err := store.GetLink(ctx, kv, store.Keys{Prefix: d.prefix}, "default", crossLink)
		if err == nil && ok(rec.A.Applied, rec.B.Applied) {
			return rec, nil
		}
		if time.Now().After(deadline) {
			return rec, fmt.Errorf("link %s: the agents did not apply its impairment within 10s (a: %q, b: %q, %v)", crossLink, rec.A.Applied, rec.B.Applied, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pingFrom pings addr from pod's netns and shows ping's summary.
func (d *demo) pingFrom(ctx context.Context, pod, addr string, args ...string) (string, error) {
	netns := fmt.Sprintf("rdemo-%s-%s", d.id, pod)
	out, err := sh(ctx, nil, "ip", append([]string{"netns", "exec", netns, "ping", "-q"}, append(args, addr)...)...)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "packet loss") || strings.HasPrefix(line, "rtt") {
			fmt.Printf("    %s: %s\n", pod, strings.TrimSpace(line))
		}
	}
	return out, err
}

// impair sets loss and a rate limit on the cross-host link, shows their
// effect, then a delay (or that the kernel cannot apply it).
func (d *demo) impair(ctx context.Context) error {
	if err := d.ratchetctl(ctx, "link", "set", "default/"+crossLink, "--loss", "20%", "--rate", "1mbit"); err != nil {
		return err
	}
	applied := func(a, b string) bool { return a != "" && b != "" }
	if _, err := d.waitApplied(ctx, applied); err != nil {
		return err
	}
	fmt.Println("    100 pings quagga-a → quagga-b with 20% loss each way (about 36% expected without reply):")
	_, _ = d.pingFrom(ctx, "quagga-a", "203.0.113.2", "-c", "100", "-i", "0.02", "-W", "1")
	if err := d.ratchetctl(ctx, "link", "set", "default/"+crossLink, "--delay", "30ms"); err != nil {
		return err
	}
	rec, err := d.waitApplied(ctx, func(a, b string) bool {
		return strings.Contains(a, "delay") || !strings.Contains(a, "not applied") && strings.Contains(a, "netem")
	})
	if err != nil {
		return err
	}
	if strings.Contains(rec.A.Applied, "not applied") {
		fmt.Printf("    this kernel has no sch_netem: the delay is recorded as %q (ratchetctl status and CHECK show it)\n", rec.A.Applied)
	} else {
		fmt.Println("    the kernel has sch_netem: 30 ms each way")
		_, _ = d.pingFrom(ctx, "quagga-a", "203.0.113.2", "-c", "3", "-i", "0.2", "-W", "2")
	}
	return d.ratchetctl(ctx, "status")
}

// linkDownUp takes the cross-host link down (ping along the chain fails,
// the routers keep their interfaces), brings it up, clears the impairment
// and pings again.
func (d *demo) linkDownUp(ctx context.Context) error {
	if err := d.ratchetctl(ctx, "link", "down", "default/"+crossLink); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := d.pingFrom(ctx, "centosa", "192.0.2.6", "-c", "2", "-i", "0.2", "-W", "1"); err == nil {
		return fmt.Errorf("ping along the chain still works with its middle link down")
	}
	for _, p := range [][2]string{{"quagga-a", "in2"}, {"quagga-b", "in1"}} {
		out, err := sh(ctx, nil, "ip", "-n", fmt.Sprintf("rdemo-%s-%s", d.id, p[0]), "-br", "link", "show", p[1])
		if err != nil {
			return fmt.Errorf("%s lost its interface %s: %w", p[0], p[1], err)
		}
		fmt.Printf("    %s keeps %s", p[0], out)
	}
	if err := d.ratchetctl(ctx, "link", "up", "default/"+crossLink); err != nil {
		return err
	}
	if err := d.ratchetctl(ctx, "link", "clear", "default/"+crossLink); err != nil {
		return err
	}
	if _, err := d.waitApplied(ctx, func(a, b string) bool { return a == "" && b == "" }); err != nil {
		return err
	}
	fmt.Println("    the routers lost their routes through the link while it was down; put them back (a routing daemon would)")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := d.routes(ctx); err != nil {
			return err
		}
		_, err := d.pingFrom(ctx, "centosa", "192.0.2.6", "-c", "3", "-i", "0.2", "-W", "1")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link up and cleared, but no ping along the chain: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
