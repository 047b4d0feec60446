// Package tcbpf keeps one named cls_bpf filter, in direct-action mode, on
// a clsact hook of a link: it adds the clsact qdisc when missing, finds the
// filter, replaces its program atomically and removes it (with the clsact
// qdisc once no filter is left on it). It is the mechanism shared by
// impair's egress program and wiring's stitch redirects; it loads no
// program itself.
package tcbpf

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Filter names one cls_bpf filter: its hook (netlink.HANDLE_MIN_INGRESS or
// HANDLE_MIN_EGRESS), handle, priority and name (TCA_BPF_NAME).
type Filter struct {
	Parent   uint32
	Handle   uint32
	Priority uint16
	Name     string
}

// BPF is the filter on the link with the given index, running the program
// with file descriptor fd (-1 to name the filter for deletion).
func (f Filter) BPF(index, fd int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: index,
			Parent:    f.Parent,
			Handle:    f.Handle,
			Priority:  f.Priority,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           fd,
		Name:         f.Name,
		DirectAction: true,
	}
}

// Is reports whether x is this filter.
func (f Filter) Is(x netlink.Filter) bool {
	b, ok := x.(*netlink.BpfFilter)
	if !ok {
		return false
	}
	a := b.Attrs()
	return a.Handle == f.Handle && a.Priority == f.Priority && b.Name == f.Name
}

// Clsact is the clsact qdisc of the link with the given index.
func Clsact(index int) *netlink.Clsact {
	return &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: index,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
}

// HasClsact reports whether l has a clsact qdisc.
func HasClsact(h *netlink.Handle, l netlink.Link) (bool, error) {
	qs, err := h.QdiscList(l)
	if err != nil {
		return false, fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			return true, nil
		}
	}
	return false, nil
}

// Find returns the filter on l, or nil (also when l has no clsact qdisc).
func (f Filter) Find(h *netlink.Handle, l netlink.Link) (*netlink.BpfFilter, error) {
	ok, err := HasClsact(h, l)
	if err != nil || !ok {
		return nil, err
	}
	fs, err := h.FilterList(l, f.Parent)
	if err != nil {
		return nil, fmt.Errorf("list filters: %w", err)
	}
	for _, x := range fs {
		if f.Is(x) {
			return x.(*netlink.BpfFilter), nil
		}
	}
	return nil, nil
}

// Replace makes the filter on l run the program with file descriptor fd,
// adding the clsact qdisc when missing; a filter already there swaps
// programs atomically. The filter keeps its own reference to the program.
func (f Filter) Replace(h *netlink.Handle, l netlink.Link, fd int) error {
	if err := h.QdiscAdd(Clsact(l.Attrs().Index)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("clsact qdisc: %w", err)
	}
	if err := h.FilterReplace(f.BPF(l.Attrs().Index, fd)); err != nil {
		return fmt.Errorf("bpf filter %s: %w", f.Name, err)
	}
	return nil
}

// Remove deletes the filter from l, then the clsact qdisc when no filter is
// left on it (ingress or egress): an empty clsact does nothing. Nothing
// there is success.
func (f Filter) Remove(h *netlink.Handle, l netlink.Link) error {
	x, err := f.Find(h, l)
	if err != nil || x == nil {
		return err
	}
	if err := h.FilterDel(f.BPF(l.Attrs().Index, -1)); err != nil && !IsGone(err) {
		return fmt.Errorf("remove bpf filter %s: %w", f.Name, err)
	}
	var left int
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := h.FilterList(l, parent)
		if err != nil {
			return fmt.Errorf("list filters: %w", err)
		}
		left += len(fs)
	}
	if left > 0 {
		return nil
	}
	if err := h.QdiscDel(Clsact(l.Attrs().Index)); err != nil && !IsGone(err) {
		return fmt.Errorf("remove empty clsact qdisc: %w", err)
	}
	return nil
}

// IsGone reports whether a tc netlink error means the object (or its link)
// is already gone.
func IsGone(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV)
}
