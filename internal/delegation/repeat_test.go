package delegation_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/delegation"
)

// A repeated ADD of a live attachment (a runtime retry) fails without
// running a delegate or touching the cache: the live attachment keeps its
// interfaces and its state, and its CHECK and DEL still work.
func TestRepeatedAddNeverDestroysTheLiveAttachment(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	ds := addThree(t, r, ex, "c1")
	before, err := os.ReadFile(cachePath(r, "c1", "eth0"))
	if err != nil {
		t.Fatal(err)
	}
	ex.fail["ADD ptp"] = types.NewError(types.ErrInternal, "container veth name already exists", "")
	ex.fail["ADD bridge"] = types.NewError(types.ErrInternal, "container veth name already exists", "")
	_, err = r.Add(context.Background(), attachment("c1"), "1.0.0", ds)
	if !errors.Is(err, delegation.ErrAttached) {
		t.Errorf("repeated Add = %v, want ErrAttached", err)
	}
	if calls := ex.taken(); len(calls) > 0 {
		t.Errorf("repeated Add ran delegates: %s", callNames(calls))
	}
	after, err := os.ReadFile(cachePath(r, "c1", "eth0"))
	if err != nil || string(after) != string(before) {
		t.Fatalf("cache after the repeated Add: %v, changed=%v", err, string(after) != string(before))
	}
	if err := r.Check(context.Background(), attachment("c1"), nil); err != nil {
		t.Errorf("CHECK after the repeated Add: %v", err)
	}
	if err := r.Del(context.Background(), attachment("c1"), ds); err != nil {
		t.Errorf("DEL after the repeated Add: %v", err)
	}
	wantNoFile(t, cachePath(r, "c1", "eth0"))
}

// An ADD killed half-way leaves a cache without results; a retry of that
// ADD runs (there is no live attachment to protect).
func TestAddAfterAnUnfinishedAddRuns(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	ds := delegates(t, "1.0.0", threeDelegates, "eth0")
	ex.fail["ADD macvlan"] = types.NewError(types.ErrInternal, "boom", "")
	ex.before = func(c execCall) {
		if c.Command == "DEL" {
			panic("killed") // the plugin dies during rollback: the cache stays
		}
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = r.Add(context.Background(), attachment("c2"), "1.0.0", ds)
	}()
	if _, err := os.Stat(cachePath(r, "c2", "eth0")); err != nil {
		t.Fatalf("no cache left by the killed ADD: %v", err)
	}
	ex.before = nil
	delete(ex.fail, "ADD macvlan")
	ex.taken()
	if _, err := r.Add(context.Background(), attachment("c2"), "1.0.0", ds); err != nil {
		t.Errorf("ADD after an unfinished ADD: %v", err)
	}
}
