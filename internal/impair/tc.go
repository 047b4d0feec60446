package impair

import (
	"math"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/tcbpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// What impair puts on an interface, recognisable by these values.
const (
	// RootHandle is the handle of impair's root qdisc (netem or tbf), 7274:.
	RootHandle uint32 = 0x7274 << 16
	// FilterPriority and FilterHandle place impair's cls_bpf filter on the
	// clsact egress hook.
	FilterPriority uint16 = 0x7274
	FilterHandle   uint32 = 0x7274
	// FilterName is the name impair's cls_bpf filter carries.
	FilterName = "ratchet-impair"
)

// Shaping parameters of the tbf path.
const (
	// tbfBurstTime is how much traffic, in time at the rate, tbf lets pass
	// at once.
	tbfBurstTime = 10 * time.Millisecond
	// tbfQueueTime is how much traffic, in time at the rate, tbf queues
	// before dropping (tc's "latency").
	tbfQueueTime = 200 * time.Millisecond
	// l2Overhead is added to the MTU for the smallest burst: Ethernet
	// header and one VLAN tag.
	l2Overhead = 18
	// minQueuePackets is the least number of full-size packets tbf queues.
	minQueuePackets = 4
)

// netemQdisc is the root netem qdisc carrying all of p on the link with
// the given index.
func netemQdisc(index int, p netem.Params) *netlink.Netem {
	attrs := netlink.QdiscAttrs{LinkIndex: index, Handle: RootHandle, Parent: netlink.HANDLE_ROOT}
	return netlink.NewNetem(attrs, netlink.NetemQdiscAttrs{
		Latency:     uint32(p.Delay / time.Microsecond),
		Jitter:      uint32(p.Jitter / time.Microsecond),
		Loss:        float32(p.Loss * 100),
		Duplicate:   float32(p.Duplicate * 100),
		CorruptProb: float32(p.Corrupt * 100),
		ReorderProb: float32(p.Reorder * 100),
		Rate64:      p.Rate / 8, // netem's rate is in bytes per second
	})
}

// tbfConfig is what impair's root tbf qdisc is made of.
type tbfConfig struct {
	// Rate in bytes per second.
	Rate uint64
	// Burst is the bucket size in bytes (TCA_TBF_BURST).
	Burst uint32
	// Limit is the queue length in bytes.
	Limit uint32
	// Buffer is Burst as time at Rate, in psched ticks, for kernels that
	// read TCA_TBF_PARMS only.
	Buffer uint32
}

// newTBFConfig sizes the tbf qdisc for rate (bits per second) on a link
// with the given MTU; tickInUsec is netlink.TickInUsec() (psched ticks per
// microsecond).
func newTBFConfig(rate uint64, mtu int, tickInUsec float64) tbfConfig {
	bytesPerSec := max(rate/8, 1)
	minBurst := uint64(max(mtu, 1500) + l2Overhead)
	burst := max(bytesPerSec*uint64(tbfBurstTime)/uint64(time.Second), minBurst)
	burst = min(burst, math.MaxUint32)
	limit := burst + bytesPerSec*uint64(tbfQueueTime)/uint64(time.Second)
	limit = max(limit, minQueuePackets*minBurst)
	limit = min(limit, math.MaxUint32)
	buffer := float64(burst) / float64(bytesPerSec) * 1e6 * tickInUsec
	buffer = min(buffer, math.MaxUint32)
	return tbfConfig{Rate: bytesPerSec, Burst: uint32(burst), Limit: uint32(limit), Buffer: uint32(buffer)}
}

// options is the tbf qdisc's TCA_OPTIONS attribute. netlink's Tbf type
// cannot send TCA_TBF_BURST, without which the kernel caps the bucket at
// about 4 s of traffic and so drops full-size packets at low rates.
func (c tbfConfig) options() *nl.RtAttr {
	var opt nl.TcTbfQopt
	opt.Rate.Linklayer = 1 // TC_LINKLAYER_ETHERNET: no rate table needed
	opt.Rate.Rate = uint32(min(c.Rate, math.MaxUint32))
	opt.Limit = c.Limit
	opt.Buffer = c.Buffer
	options := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	options.AddRtAttr(nl.TCA_TBF_PARMS, opt.Serialize())
	if c.Rate >= math.MaxUint32 {
		options.AddRtAttr(nl.TCA_TBF_RATE64, nl.Uint64Attr(c.Rate))
	}
	options.AddRtAttr(nl.TCA_TBF_BURST, nl.Uint32Attr(c.Burst))
	return options
}

// request is the RTM_NEWQDISC request that creates or replaces impair's
// root tbf qdisc on the link with the given index.
func (c tbfConfig) request(index int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{
		Family:  nl.FAMILY_ALL,
		Ifindex: int32(index),
		Handle:  RootHandle,
		Parent:  netlink.HANDLE_ROOT,
	})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated("tbf")))
	req.AddData(c.options())
	return req
}

// impairFilter is impair's cls_bpf filter on the clsact egress hook.
var impairFilter = tcbpf.Filter{Parent: netlink.HANDLE_MIN_EGRESS, Handle: FilterHandle, Priority: FilterPriority, Name: FilterName}

// bpfFilter is impair's egress filter on the link with the given index,
// running the program with file descriptor fd (-1 to name it for deletion).
func bpfFilter(index, fd int) *netlink.BpfFilter { return impairFilter.BPF(index, fd) }

// isOurFilter reports whether f is impair's egress filter.
func isOurFilter(f netlink.Filter) bool { return impairFilter.Is(f) }

// isOurRoot reports whether q is impair's root qdisc.
func isOurRoot(q netlink.Qdisc) bool {
	a := q.Attrs()
	if a.Parent != netlink.HANDLE_ROOT || a.Handle != RootHandle {
		return false
	}
	switch q.Type() {
	case "netem", "tbf":
		return true
	}
	return false
}
