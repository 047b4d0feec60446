package impair

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"
	"golang.org/x/sys/unix"
)

// Probe finds what the running kernel offers by trying it: in a throwaway
// network namespace (made for the probe and gone with it), it puts a netem
// qdisc, then a tbf qdisc, then impair's BPF program in a clsact egress
// filter on the loopback device, the same requests Apply makes. An
// ability the kernel lacks is false in the result with what the probe saw
// in Why; an error means the probe itself could not run (not root, no
// netns support, ctx done).
func Probe(ctx context.Context) (Kernel, error) {
	type result struct {
		k   Kernel
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread is never unlocked: it enters the throwaway netns and
		// ends with this goroutine, so no other goroutine runs there.
		runtime.LockOSThread()
		k, err := probeHere(ctx)
		done <- result{k, err}
	}()
	select {
	case r := <-done:
		return r.k, r.err
	case <-ctx.Done():
		return Kernel{}, fmt.Errorf("probe kernel impairments: %w", ctx.Err())
	}
}

// probeHere moves the calling (locked) thread into a new netns and probes
// there.
func probeHere(ctx context.Context) (Kernel, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return Kernel{}, fmt.Errorf("probe kernel impairments: new netns: %w", err)
	}
	path := fmt.Sprintf("/proc/%d/task/%d/ns/net", unix.Getpid(), unix.Gettid())
	c, err := open(ctx, path)
	if err != nil {
		return Kernel{}, fmt.Errorf("probe kernel impairments: %w", err)
	}
	defer c.Close()
	lo, err := c.link("lo")
	if err != nil {
		return Kernel{}, fmt.Errorf("probe kernel impairments: %w", err)
	}
	var k Kernel
	var why []string
	missing := func(what string, err error) { why = append(why, what+": "+err.Error()) }

	err = c.setRoot(lo, MechNetem, netem.Params{Delay: time.Millisecond, Loss: 0.01})
	switch {
	case err == nil:
		k.Netem = true
	case isAbsent(err):
		missing("sch_netem", err)
	default:
		return Kernel{}, fmt.Errorf("probe sch_netem: %w", err)
	}
	err = c.setRoot(lo, MechTBF, netem.Params{Rate: 1_000_000})
	switch {
	case err == nil:
		k.TBF = true
	case isAbsent(err):
		missing("sch_tbf", err)
	default:
		return Kernel{}, fmt.Errorf("probe sch_tbf: %w", err)
	}
	// Any failure here means no usable tc BPF: no bpf(2), a verifier or
	// helper the program does not suit, no clsact or cls_bpf. Apply then
	// reports loss, corrupt and duplicate as not applied, with Why.
	if err := c.setFilter(lo, netem.Params{Loss: 0.01, Corrupt: 0.01, Duplicate: 0.01}); err != nil {
		missing("tc BPF", err)
	} else {
		k.BPF = true
	}
	k.Why = strings.Join(why, "; ")
	return k, nil
}

// isAbsent reports whether a qdisc request failed because the kernel does
// not know the qdisc kind (ENOENT: "Specified qdisc kind is unknown") or
// will not do it.
func isAbsent(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}
