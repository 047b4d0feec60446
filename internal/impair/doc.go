// Package impair applies a link end's declared impairments (delay, jitter,
// loss, rate, corruption, duplication, reordering) to the egress of a
// network interface in a network namespace, with netlink only.
//
// Where the kernel has sch_netem, one root netem qdisc carries the whole
// netem.Spec, rate included. Where it has not (minimal VM kernels), rate is
// shaped with a root tbf qdisc, and loss, corruption and duplication are
// done by a small tc BPF program on the clsact egress hook (direct action)
// whose instructions are built in Go (github.com/cilium/ebpf/asm, no
// compiler at build or run time); delay, jitter and reordering cannot be
// had without netem and are reported as not applied in the Applied value,
// never dropped silently.
//
// The BPF program, per packet leaving the interface:
//   - loss: consumes the packet (TC_ACT_STOLEN); the sender sees its send
//     succeed, as with netem, instead of an ENOBUFS it would retry;
//   - duplication: sends one copy to the same interface's egress with
//     bpf_clone_redirect, tagged so the copy is not impaired again;
//   - corruption: flips one random bit of one random byte after the L3
//     header (after the Ethernet header for non-IP frames). Receivers drop
//     such packets through the L4 checksum when it was computed before the
//     flip (ICMP; any packet without checksum offload). TCP and UDP over a
//     veth with checksum offload (the default) carry a checksum the kernel
//     completes after the program and the peer trusts: there the flipped
//     bit reaches the application. netem avoids this by computing the
//     checksum first; the BPF path cannot.
//
// Like netem's loss and duplication, the program acts per socket buffer:
// a TCP GSO packet on a veth (up to 64 KiB) is lost or duplicated whole.
//
// tbf is sized from the rate: a bucket of 10 ms of traffic (at least one
// full frame of the link's MTU) and a queue of 200 ms more; it is sent
// with TCA_TBF_BURST, so rates down to 8 bit/s still pass full frames.
//
// Everything impair puts on an interface is recognisable as its own: the
// root qdisc has handle 7274: ("rt"), the egress filter has priority and
// handle 0x7274 and the name "ratchet-impair". Clear and Apply remove only
// those, and the clsact qdisc when no filter at all is left on it.
//
// The package is a leaf above netlink: it knows nothing of CNI, etcd or
// the agent. Probe tells once per host what the kernel offers; Apply,
// Clear and Inspect act on one interface and are idempotent; calls for the
// same interface must not run concurrently. Kernels before 5.11 charge BPF
// maps to RLIMIT_MEMLOCK: there the agent must raise it (cilium/ebpf's
// rlimit.RemoveMemlock) or Probe reports no tc BPF.
package impair
