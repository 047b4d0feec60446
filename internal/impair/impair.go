package impair

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/tcbpf"
	"github.com/vishvananda/netlink"
)

// Apply puts s on the egress of interface ifname in the netns at
// netnsPath, with what kernel k offers (from Probe), and says how. It
// replaces whatever an earlier Apply put there; a zero netem.Spec (or one whose
// values are all zero) clears. Fields k cannot apply are listed in the
// result, not an error. Calls for one interface must not run concurrently.
func Apply(ctx context.Context, netnsPath, ifname string, s netem.Spec, k Kernel) (Applied, error) {
	p, err := s.Params()
	if err != nil {
		return Applied{}, err
	}
	a := plan(p, k)
	c, err := open(ctx, netnsPath)
	if err != nil {
		return Applied{}, fmt.Errorf("impair %s: %w", ifname, err)
	}
	defer c.Close()
	l, err := c.link(ifname)
	if err != nil {
		return Applied{}, fmt.Errorf("impair: %w", err)
	}
	if err := c.apply(l, a); err != nil {
		return Applied{}, fmt.Errorf("impair %s in netns %s (%s): %w", ifname, netnsPath, a.InForce, err)
	}
	return a, nil
}

// apply makes the link carry what a says: the root qdisc first, then the
// egress filter.
func (c *conn) apply(l netlink.Link, a Applied) error {
	var root string
	bpf := false
	for _, m := range a.Mechanisms {
		switch m {
		case MechNetem, MechTBF:
			root = m
		case MechBPF:
			bpf = true
		}
	}
	if err := c.setRoot(l, root, a.InForce); err != nil {
		return err
	}
	if bpf {
		return c.setFilter(l, a.InForce)
	}
	return c.clearFilter(l)
}

// setRoot makes impair's root qdisc of the given kind ("" for none) carry
// p. An own root of another kind is removed first: the kernel does not
// change a qdisc's kind in place.
func (c *conn) setRoot(l netlink.Link, kind string, p netem.Params) error {
	cur, err := c.ourRoot(l)
	if err != nil {
		return err
	}
	if cur != nil && cur.Type() != kind {
		if err := c.h.QdiscDel(cur); err != nil && !tcbpf.IsGone(err) {
			return fmt.Errorf("remove root %s qdisc: %w", cur.Type(), err)
		}
	}
	switch kind {
	case MechNetem:
		if err := c.h.QdiscReplace(netemQdisc(l.Attrs().Index, p)); err != nil {
			return fmt.Errorf("root netem qdisc: %w", err)
		}
	case MechTBF:
		cfg := newTBFConfig(p.Rate, l.Attrs().MTU, netlink.TickInUsec())
		if err := c.execute(cfg.request(l.Attrs().Index)); err != nil {
			return fmt.Errorf("root tbf qdisc (rate %d B/s, burst %d B, limit %d B): %w", cfg.Rate, cfg.Burst, cfg.Limit, err)
		}
	}
	return nil
}

// ourRoot returns impair's root qdisc on l, or nil.
func (c *conn) ourRoot(l netlink.Link) (netlink.Qdisc, error) {
	qs, err := c.h.QdiscList(l)
	if err != nil {
		return nil, fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		if isOurRoot(q) {
			return q, nil
		}
	}
	return nil, nil
}

// setFilter loads a program for p's thresholds and puts it in impair's
// egress filter, adding clsact when missing. Replacing the filter swaps
// programs atomically.
func (c *conn) setFilter(l netlink.Link, p netem.Params) error {
	prog, err := loadProgram(p)
	if err != nil {
		return err
	}
	defer prog.Close()
	return impairFilter.Replace(c.h, l, prog.prog.FD())
}

// ourFilter returns impair's egress filter on l, or nil; also nil when l
// has no clsact qdisc.
func (c *conn) ourFilter(l netlink.Link) (*netlink.BpfFilter, error) {
	return impairFilter.Find(c.h, l)
}

// clearFilter removes impair's egress filter, then the clsact qdisc when
// no filter is left on it: impair is what adds one to ratchet's links.
func (c *conn) clearFilter(l netlink.Link) error {
	return impairFilter.Remove(c.h, l)
}

// Clear removes what impair put on the interface: its root qdisc and its
// egress filter (and the clsact qdisc when nothing else is on it). It is
// idempotent, and succeeds when the interface or the netns is gone.
func Clear(ctx context.Context, netnsPath, ifname string) error {
	c, err := open(ctx, netnsPath)
	if errors.Is(err, ErrNetnsGone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear impairment on %s: %w", ifname, err)
	}
	defer c.Close()
	l, err := c.link(ifname)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear impairment: %w", err)
	}
	if err := c.setRoot(l, "", netem.Params{}); err != nil && !tcbpf.IsGone(err) {
		return fmt.Errorf("clear impairment on %s in netns %s: %w", ifname, netnsPath, err)
	}
	if err := c.clearFilter(l); err != nil && !tcbpf.IsGone(err) {
		return fmt.Errorf("clear impairment on %s in netns %s: %w", ifname, netnsPath, err)
	}
	return nil
}

// Inspect reads what impair has on the interface now: the mechanisms and
// the values in force (InForce), read back from the qdisc and the BPF
// map. Compare it with Plan for CHECK (Diff, or Verify).
func Inspect(ctx context.Context, netnsPath, ifname string) (Applied, error) {
	c, err := open(ctx, netnsPath)
	if err != nil {
		return Applied{}, fmt.Errorf("inspect impairment on %s: %w", ifname, err)
	}
	defer c.Close()
	l, err := c.link(ifname)
	if err != nil {
		return Applied{}, fmt.Errorf("inspect impairment: %w", err)
	}
	a, err := c.inspect(l)
	if err != nil {
		return Applied{}, fmt.Errorf("inspect impairment on %s in netns %s: %w", ifname, netnsPath, err)
	}
	return a, nil
}

// inspect is Inspect on an open link.
func (c *conn) inspect(l netlink.Link) (Applied, error) {
	var a Applied
	root, err := c.ourRoot(l)
	if err != nil {
		return Applied{}, err
	}
	switch q := root.(type) {
	case *netlink.Netem:
		a.Mechanisms = append(a.Mechanisms, MechNetem)
		a.InForce = netemParams(q, netlink.TickInUsec())
	case *netlink.Tbf:
		a.Mechanisms = append(a.Mechanisms, MechTBF)
		a.InForce.Rate = q.Rate * 8
	}
	f, err := c.ourFilter(l)
	if err != nil {
		return Applied{}, err
	}
	if f != nil {
		a.Mechanisms = append(a.Mechanisms, MechBPF)
		t, err := readThresholds(f.Id)
		if err != nil {
			return Applied{}, err
		}
		a.InForce.Loss = probability(t[0])
		a.InForce.Corrupt = probability(t[1])
		a.InForce.Duplicate = probability(t[2])
	}
	return a, nil
}

// netemParams reads a netem qdisc's values back; times are in psched
// ticks (tickInUsec per microsecond), probabilities in 2³²−1 steps.
func netemParams(q *netlink.Netem, tickInUsec float64) netem.Params {
	toDuration := func(ticks uint32) time.Duration {
		return time.Duration(math.Round(float64(ticks)/tickInUsec)) * time.Microsecond
	}
	prob := func(v uint32) float64 { return float64(v) / math.MaxUint32 }
	return netem.Params{
		Delay:     toDuration(q.Latency),
		Jitter:    toDuration(q.Jitter),
		Loss:      prob(q.Loss),
		Corrupt:   prob(q.CorruptProb),
		Duplicate: prob(q.Duplicate),
		Reorder:   prob(q.ReorderProb),
		Rate:      q.Rate64 * 8,
	}
}

// Verify checks that the interface carries what Apply would put there for
// s on kernel k (for CHECK); the error lists every difference.
func Verify(ctx context.Context, netnsPath, ifname string, s netem.Spec, k Kernel) error {
	want, err := Plan(s, k)
	if err != nil {
		return err
	}
	got, err := Inspect(ctx, netnsPath, ifname)
	if err != nil {
		return err
	}
	if d := Diff(want, got); len(d) > 0 {
		return fmt.Errorf("impairment on %s in netns %s: %s", ifname, netnsPath, strings.Join(d, "; "))
	}
	return nil
}
