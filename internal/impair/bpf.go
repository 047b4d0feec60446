package impair

import (
	"errors"
	"fmt"
	"math"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/ratchet-cni/ratchet/internal/netem"
)

// The BPF side of the no-netem path: a one-element array map holding three
// thresholds and a SchedCLS program reading them. A threshold t applies an
// impairment when bpf_get_prandom_u32() < t, so t = p·2³² for probability
// p; 2³² (always) does not fit in 32 bits, hence 64-bit values and
// 64-bit comparisons.

// Names of the program and its map, as bpftool shows them.
const (
	progName = "ratchet_impair"
	mapName  = "ratchet_impair"
	// progLicense is what the kernel reads to allow GPL-only helpers; the
	// program uses none, so any string would load today.
	progLicense = "GPL"
)

// Offsets of the map value's thresholds, in bytes.
const (
	offLoss      = 0
	offCorrupt   = 8
	offDuplicate = 16
	valueSize    = 24
)

// Offsets in struct __sk_buff (include/uapi/linux/bpf.h).
const (
	skbLen     = 0
	skbIfindex = 40
	skbTCIndex = 44
)

// Return codes of a direct-action program.
const (
	// tcActUnspec lets the packet go on to the next filter and the
	// qdisc, as if no filter matched.
	tcActUnspec = -1
	// tcActStolen consumes the packet: gone, while the sender sees its
	// transmission succeed, as with netem's loss. (TC_ACT_SHOT would
	// make the send fail with ENOBUFS, which senders retry: ping resends,
	// TCP takes it for local congestion.)
	tcActStolen = 4
)

// dupTag marks the copy bpf_clone_redirect sends, in skb->tc_index (16
// bits, unused on egress since dsmark and tcindex left the kernel), so the
// program lets the copy pass untouched instead of duplicating it again.
const dupTag = 0x7274

// Ethernet and IP header facts the corruption uses.
const (
	ethHeaderLen  = 14
	ipv6HeaderLen = 40
	minIPv4Header = 20
)

// thresholds are the map value: loss, corrupt, duplicate.
type thresholds [3]uint64

// threshold turns a probability into a comparison bound for a 32-bit
// random number.
func threshold(p float64) uint64 {
	if p <= 0 {
		return 0
	}
	if p >= 1 {
		return 1 << 32
	}
	return uint64(math.Round(p * (1 << 32)))
}

// probability turns a threshold back into a probability.
func probability(t uint64) float64 {
	return float64(min(t, 1<<32)) / (1 << 32)
}

// newThresholds is the map value for p.
func newThresholds(p netem.Params) thresholds {
	return thresholds{threshold(p.Loss), threshold(p.Corrupt), threshold(p.Duplicate)}
}

// instructions is the program, reading its thresholds from the map with
// file descriptor mapFD. Registers: r6 the skb, r7 the map value, r8 and
// r9 scratch kept across helper calls.
//
//  1. A copy tagged by an earlier duplication: clear the tag, pass.
//  2. loss: consume the packet (TC_ACT_STOLEN).
//  3. duplicate: bpf_clone_redirect to the same interface's egress, the
//     copy tagged (the original's tc_index is restored after).
//  4. corrupt: flip one random bit of one random byte after the L3
//     header (IPv4 with its IHL, IPv6's fixed header; after the Ethernet
//     header for anything else), with bpf_skb_load_bytes and
//     bpf_skb_store_bytes.
func instructions(mapFD int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),

		// 1. our own duplicate
		asm.LoadMem(asm.R2, asm.R6, skbTCIndex, asm.Word),
		asm.JNE.Imm(asm.R2, dupTag, "lookup"),
		asm.Mov.Imm(asm.R2, 0),
		asm.StoreMem(asm.R6, skbTCIndex, asm.R2, asm.Word),
		asm.Ja.Label("pass"),

		// the thresholds
		asm.StoreImm(asm.RFP, -4, 0, asm.Word).WithSymbol("lookup"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Mov.Reg(asm.R7, asm.R0),

		// 2. loss
		asm.LoadMem(asm.R8, asm.R7, offLoss, asm.DWord),
		asm.JEq.Imm(asm.R8, 0, "duplicate"),
		asm.FnGetPrandomU32.Call(),
		asm.JLT.Reg(asm.R0, asm.R8, "drop"),

		// 3. duplicate
		asm.LoadMem(asm.R8, asm.R7, offDuplicate, asm.DWord).WithSymbol("duplicate"),
		asm.JEq.Imm(asm.R8, 0, "corrupt"),
		asm.FnGetPrandomU32.Call(),
		asm.JGE.Reg(asm.R0, asm.R8, "corrupt"),
		asm.LoadMem(asm.R9, asm.R6, skbTCIndex, asm.Word),
		asm.Mov.Imm(asm.R1, dupTag),
		asm.StoreMem(asm.R6, skbTCIndex, asm.R1, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMem(asm.R2, asm.R6, skbIfindex, asm.Word),
		asm.Mov.Imm(asm.R3, 0), // flags: egress
		asm.FnCloneRedirect.Call(),
		asm.StoreMem(asm.R6, skbTCIndex, asm.R9, asm.Word),

		// 4. corrupt
		asm.LoadMem(asm.R8, asm.R7, offCorrupt, asm.DWord).WithSymbol("corrupt"),
		asm.JEq.Imm(asm.R8, 0, "pass"),
		asm.FnGetPrandomU32.Call(),
		asm.JGE.Reg(asm.R0, asm.R8, "pass"),
		// bytes 12..14: EtherType and IPv4's version/IHL
		asm.StoreImm(asm.RFP, -16, 0, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 12),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 3),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
		asm.Mov.Imm(asm.R8, ethHeaderLen),
		asm.LoadMem(asm.R1, asm.RFP, -16, asm.Byte),
		asm.LoadMem(asm.R2, asm.RFP, -15, asm.Byte),
		asm.JNE.Imm(asm.R1, 0x08, "ipv6"),
		asm.JNE.Imm(asm.R2, 0x00, "span"),
		asm.LoadMem(asm.R3, asm.RFP, -14, asm.Byte),
		asm.And.Imm(asm.R3, 0x0f),
		asm.LSh.Imm(asm.R3, 2),
		asm.JLT.Imm(asm.R3, minIPv4Header, "pass"),
		asm.Add.Reg(asm.R8, asm.R3),
		asm.Ja.Label("span"),
		asm.JNE.Imm(asm.R1, 0x86, "span").WithSymbol("ipv6"),
		asm.JNE.Imm(asm.R2, 0xdd, "span"),
		asm.Add.Imm(asm.R8, ipv6HeaderLen),
		// r8 = start of the corruptible part; r9 = its length
		asm.LoadMem(asm.R9, asm.R6, skbLen, asm.Word).WithSymbol("span"),
		asm.JLE.Reg(asm.R9, asm.R8, "pass"),
		asm.Sub.Reg(asm.R9, asm.R8),
		asm.FnGetPrandomU32.Call(),
		asm.Mod.Reg(asm.R0, asm.R9),
		asm.Add.Reg(asm.R8, asm.R0),
		// load the byte at r8, flip a random bit, store it back
		asm.StoreImm(asm.RFP, -8, 0, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R8),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -8),
		asm.Mov.Imm(asm.R4, 1),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
		asm.FnGetPrandomU32.Call(),
		asm.And.Imm(asm.R0, 7),
		asm.Mov.Imm(asm.R1, 1),
		asm.LSh.Reg(asm.R1, asm.R0),
		asm.LoadMem(asm.R2, asm.RFP, -8, asm.Byte),
		asm.Xor.Reg(asm.R2, asm.R1),
		asm.StoreMem(asm.RFP, -8, asm.R2, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R8),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -8),
		asm.Mov.Imm(asm.R4, 1),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnSkbStoreBytes.Call(),

		asm.Mov.Imm(asm.R0, tcActUnspec).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActStolen).WithSymbol("drop"),
		asm.Return(),
	}
}

// program is a loaded impair program and its map.
type program struct {
	prog *ebpf.Program
	m    *ebpf.Map
}

// loadProgram creates the map holding p's thresholds, freezes it (where
// the kernel can: it makes the thresholds read-only for everyone) and
// loads the program that reads it.
func loadProgram(p netem.Params) (*program, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       mapName,
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  valueSize,
		MaxEntries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create BPF map: %w", err)
	}
	if err := m.Put(uint32(0), newThresholds(p)); err != nil {
		m.Close()
		return nil, fmt.Errorf("write BPF map: %w", err)
	}
	if err := m.Freeze(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		m.Close()
		return nil, fmt.Errorf("freeze BPF map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         progName,
		Type:         ebpf.SchedCLS,
		Instructions: instructions(m.FD()),
		License:      progLicense,
	})
	if err != nil {
		m.Close()
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load BPF program: %w (verifier: %+v)", err, verr)
		}
		return nil, fmt.Errorf("load BPF program: %w", err)
	}
	return &program{prog: prog, m: m}, nil
}

// Close releases the file descriptors; a filter using the program keeps
// it and its map alive.
func (p *program) Close() {
	p.prog.Close()
	p.m.Close()
}

// readThresholds reads the thresholds of the program with the given ID
// back from its map.
func readThresholds(id int) (thresholds, error) {
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return thresholds{}, fmt.Errorf("open BPF program %d: %w", id, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return thresholds{}, fmt.Errorf("BPF program %d info: %w", id, err)
	}
	ids, ok := info.MapIDs()
	if !ok || len(ids) != 1 {
		return thresholds{}, fmt.Errorf("BPF program %d: want one map, kernel reports %d", id, len(ids))
	}
	m, err := ebpf.NewMapFromID(ids[0])
	if err != nil {
		return thresholds{}, fmt.Errorf("open BPF map %d of program %d: %w", ids[0], id, err)
	}
	defer m.Close()
	if m.ValueSize() != valueSize || m.KeySize() != 4 {
		return thresholds{}, fmt.Errorf("BPF map %d of program %d: key/value size %d/%d, want 4/%d", ids[0], id, m.KeySize(), m.ValueSize(), valueSize)
	}
	var t thresholds
	if err := m.Lookup(uint32(0), &t); err != nil {
		return thresholds{}, fmt.Errorf("read BPF map %d of program %d: %w", ids[0], id, err)
	}
	return t, nil
}
