package memstore

import (
	"fmt"
	"maps"
	"sync"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// Op names a Store method, for FailNext, OnNext and Ops.
type Op string

// The operations of a Store.
const (
	OpGet       Op = "get"
	OpList      Op = "list"
	OpCreate    Op = "create"
	OpUpdate    Op = "update"
	OpPut       Op = "put"
	OpDelete    Op = "delete"
	OpDeleteDir Op = "delete dir"
	OpWatch     Op = "watch"
	OpPing      Op = "ping"
)

// faults holds the injected failures and the call counters. It has its own
// lock: hooks run outside the store's.
type faults struct {
	mu          sync.Mutex
	unavailable bool
	up          chan struct{} // closed while available
	fail        []injected
	hooks       []hook
	ops         map[Op]int
}

type injected struct {
	op  Op
	key string
	err error
}

type hook struct {
	op  Op
	key string
	fn  func()
}

func (f *faults) init() {
	f.up = make(chan struct{})
	close(f.up)
	f.ops = map[Op]int{}
}

// matches: key "" stands for any key.
func matches(op, wantOp Op, key, wantKey string) bool {
	return op == wantOp && (wantKey == "" || key == wantKey)
}

// check counts op and returns the error it must fail with, if any: an
// injected one (consumed) first, then ErrUnavailable.
func (f *faults) check(op Op, key string) error {
	if err := f.injected(op, key); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unavailable {
		return fmt.Errorf("%w (memstore set unavailable)", store.ErrUnavailable)
	}
	return nil
}

// injected counts op and returns (consuming it) the failure injected for
// op on key, if any.
func (f *faults) injected(op Op, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops[op]++
	for i, inj := range f.fail {
		if matches(op, inj.op, key, inj.key) {
			f.fail = append(f.fail[:i:i], f.fail[i+1:]...)
			return inj.err
		}
	}
	return nil
}

// runHook runs (and consumes) the first hook for op on key.
func (f *faults) runHook(op Op, key string) {
	f.mu.Lock()
	var fn func()
	for i, h := range f.hooks {
		if matches(op, h.op, key, h.key) {
			fn = h.fn
			f.hooks = append(f.hooks[:i:i], f.hooks[i+1:]...)
			break
		}
	}
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// upChan returns a channel that is closed while the store is available.
func (f *faults) upChan() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.up
}

// SetUnavailable makes every call fail with an error wrapping
// store.ErrUnavailable while down is true. Watches stay open; they hold
// their events until it is lifted.
func (s *Store) SetUnavailable(down bool) {
	f := &s.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case down && !f.unavailable:
		f.up = make(chan struct{})
	case !down && f.unavailable:
		close(f.up)
	}
	f.unavailable = down
}

// FailNext makes the next call of op on key ("" = any key) fail with err,
// without effect; err is wrapped with the op and key, so errors.Is sees it
// (store.ErrConflict, store.ErrUnavailable, ...). Calls queue: each
// failure is used once, in the order given. For OpWatch, key is the dir and
// the watch sends an Event with the error, then closes.
func (s *Store) FailNext(op Op, key string, err error) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.fail = append(s.faults.fail, injected{op: op, key: key, err: err})
}

// OnNext runs fn once, just before the next call of op on key ("" = any
// key) takes effect, outside the store's lock: fn may use the store, for
// example to write the key between a caller's read and its Update, so that
// the Update meets a real conflict.
func (s *Store) OnNext(op Op, key string, fn func()) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.hooks = append(s.faults.hooks, hook{op: op, key: key, fn: fn})
}

// Ops returns how many times each operation was called so far (failed
// calls included, calls with an invalid key or version not).
func (s *Store) Ops() map[Op]int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return maps.Clone(s.faults.ops)
}
