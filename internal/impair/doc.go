// Package impair applies a link end's declared impairments (delay, jitter,
// loss, rate, corruption, duplication, reordering) to a network interface
// in a network namespace, with netlink only.
//
// Where the kernel has sch_netem, one root netem qdisc carries the whole
// Spec, rate included. Where it has not (minimal VM kernels), rate is
// shaped with a root tbf qdisc, and loss, corruption and duplication are
// done by a small tc BPF program on the clsact egress hook (direct action)
// whose instructions are built in Go (github.com/cilium/ebpf/asm); delay,
// jitter and reordering cannot be had without netem and are reported as
// not applied in the Applied value, never dropped silently.
//
// Everything impair puts on an interface is recognisable as its own: the
// root qdisc has handle 7274: ("rt"), the egress filter has priority and
// handle 0x7274 and the name "ratchet-impair". Clear and Apply remove only
// those; another component's filters and qdiscs are left alone.
//
// The package is a leaf above netlink: it knows nothing of CNI, etcd or
// the agent. Probe tells once per host what the kernel offers; Apply,
// Clear and Inspect act on one interface and are idempotent.
package impair
