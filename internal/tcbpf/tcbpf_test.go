package tcbpf

import (
	"testing"

	"github.com/vishvananda/netlink"
)

func TestFilterKnowsItsOwnAndNoOther(t *testing.T) {
	f := Filter{Parent: netlink.HANDLE_MIN_EGRESS, Handle: 7, Priority: 9, Name: "mine"}
	b := f.BPF(3, 5)
	if b.LinkIndex != 3 || b.Fd != 5 || !b.DirectAction || b.Parent != netlink.HANDLE_MIN_EGRESS {
		t.Fatalf("BPF(3, 5) = %+v", b)
	}
	if !f.Is(b) {
		t.Fatal("Is does not know the filter's own BPF")
	}
	for _, change := range []func(*netlink.BpfFilter){
		func(x *netlink.BpfFilter) { x.Name = "other" },
		func(x *netlink.BpfFilter) { x.Handle = 8 },
		func(x *netlink.BpfFilter) { x.Priority = 10 },
	} {
		x := f.BPF(3, 5)
		change(x)
		if f.Is(x) {
			t.Errorf("Is takes %+v for its own", x)
		}
	}
	if f.Is(&netlink.U32{FilterAttrs: netlink.FilterAttrs{Handle: 7, Priority: 9}}) {
		t.Error("Is takes a u32 filter for its own")
	}
}
