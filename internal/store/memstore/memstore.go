package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ratchet-cni/ratchet/internal/etcdcfg"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// ErrClosed is the error of every call after Close.
var ErrClosed = errors.New("memstore: closed")

// DefaultHistory is how many events a Store keeps for watches to resume
// from, unless WithHistory says otherwise.
const DefaultHistory = 1000

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	prefix  string
	history int

	mu        sync.Mutex
	rev       int64
	keys      map[string]*entry
	ttls      map[string]time.Time // the keys with a TTL and their deadlines
	events    []store.Event        // the kept history, in revision order
	compacted int64                // watches must resume after this revision
	watchers  map[*watcher]struct{}
	clock     clock
	faults    faults

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup // watcher goroutines
}

// entry is one key's value and mod revision.
type entry struct {
	val []byte
	rev int64
}

var _ store.Store = (*Store)(nil)

// Option configures New.
type Option func(*Store)

// WithHistory keeps the last n events for watches to resume from (n >= 1).
func WithHistory(n int) Option {
	return func(s *Store) {
		if n >= 1 {
			s.history = n
		}
	}
}

// WithClock makes the store read the time from now. With it, no timer runs:
// keys expire when a call, Expire or Advance finds them past their deadline.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.clock.now, s.clock.custom = now, true }
}

// New returns an empty store whose keys must be under prefix (normalised as
// store.New does; "" allows every key). Its revision starts at 1, as a new
// etcd's does.
func New(prefix string, opts ...Option) *Store {
	s := &Store{
		prefix:   etcdcfg.NormalizePrefix(prefix),
		history:  DefaultHistory,
		rev:      1,
		keys:     map[string]*entry{},
		ttls:     map[string]time.Time{},
		watchers: map[*watcher]struct{}{},
		done:     make(chan struct{}),
	}
	s.clock.init()
	s.faults.init()
	for _, o := range opts {
		o(s)
	}
	return s
}

// begin checks key and enters the store (see enter); the caller must call
// s.mu.Unlock when it returns nil.
func (s *Store) begin(op Op, key string) error {
	if err := store.CheckKey(s.prefix, key); err != nil {
		return err
	}
	return s.enter(op, key)
}

// enter runs op's hook, locks the store, counts op, and fails with an
// injected fault, ErrUnavailable or ErrClosed (unlocking again); else it
// expires the keys that are due and returns nil with the store locked.
func (s *Store) enter(op Op, key string) error {
	s.faults.runHook(op, key)
	s.mu.Lock()
	err := s.faults.check(op, key)
	if err == nil && s.isClosed() {
		err = ErrClosed
	}
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	s.expireLocked()
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

func (e *entry) kv(key string) store.KV {
	return store.KV{Key: key, Value: clone(e.val), Version: e.rev}
}

// Get implements store.Store.
func (s *Store) Get(_ context.Context, key string) (store.KV, error) {
	if err := s.begin(OpGet, key); err != nil {
		return store.KV{}, err
	}
	defer s.mu.Unlock()
	e, ok := s.keys[key]
	if !ok {
		return store.KV{}, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
	}
	return e.kv(key), nil
}

// List implements store.Store.
func (s *Store) List(_ context.Context, dir string) ([]store.KV, int64, error) {
	if err := s.begin(OpList, dir); err != nil {
		return nil, 0, err
	}
	defer s.mu.Unlock()
	var kvs []store.KV
	for _, k := range s.below(dir) {
		kvs = append(kvs, s.keys[k].kv(k))
	}
	return kvs, s.rev, nil
}

// below returns the keys below dir, sorted.
func (s *Store) below(dir string) []string {
	var keys []string
	for k := range s.keys {
		if strings.HasPrefix(k, dir+"/") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Create implements store.Store.
func (s *Store) Create(_ context.Context, key string, val []byte, ttl time.Duration) (store.KV, error) {
	if err := s.begin(OpCreate, key); err != nil {
		return store.KV{}, err
	}
	defer s.mu.Unlock()
	if _, ok := s.keys[key]; ok {
		return store.KV{}, fmt.Errorf("create %s: %w", key, store.ErrExists)
	}
	kv := s.putLocked(key, val)
	if ttl > 0 {
		s.ttls[key] = s.clock.nowLocked().Add(time.Duration(store.TTLSeconds(ttl)) * time.Second)
		s.armLocked()
	}
	return kv, nil
}

// Update implements store.Store.
func (s *Store) Update(_ context.Context, key string, val []byte, version int64) (store.KV, error) {
	if version <= 0 {
		if err := store.CheckKey(s.prefix, key); err != nil {
			return store.KV{}, err
		}
		return store.KV{}, fmt.Errorf("update %s: invalid version %d", key, version)
	}
	if err := s.begin(OpUpdate, key); err != nil {
		return store.KV{}, err
	}
	defer s.mu.Unlock()
	if err := s.compareLocked(key, version); err != nil {
		return store.KV{}, fmt.Errorf("update %s: %w", key, err)
	}
	return s.putLocked(key, val), nil
}

// Put implements store.Store.
func (s *Store) Put(_ context.Context, key string, val []byte) (store.KV, error) {
	if err := s.begin(OpPut, key); err != nil {
		return store.KV{}, err
	}
	defer s.mu.Unlock()
	return s.putLocked(key, val), nil
}

// compareLocked is the CAS check: ErrNotFound or ErrConflict.
func (s *Store) compareLocked(key string, version int64) error {
	e, ok := s.keys[key]
	switch {
	case !ok:
		return store.ErrNotFound
	case e.rev != version:
		return store.ErrConflict
	}
	return nil
}

// putLocked writes key at a new revision, permanent (no TTL), and tells the
// watchers.
func (s *Store) putLocked(key string, val []byte) store.KV {
	s.rev++
	e := &entry{val: clone(val), rev: s.rev}
	s.keys[key] = e
	delete(s.ttls, key)
	s.emitLocked(store.Event{Type: store.Put, KV: e.kv(key)})
	return e.kv(key)
}

// Delete implements store.Store.
func (s *Store) Delete(_ context.Context, key string, version int64) error {
	if version < 0 {
		if err := store.CheckKey(s.prefix, key); err != nil {
			return err
		}
		return fmt.Errorf("delete %s: invalid version %d", key, version)
	}
	if err := s.begin(OpDelete, key); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.keys[key]; !ok {
		return fmt.Errorf("delete %s: %w", key, store.ErrNotFound)
	}
	if version != 0 {
		if err := s.compareLocked(key, version); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	s.rev++
	s.deleteLocked(key)
	return nil
}

// DeleteDir implements store.Store: one revision, one Delete event per key.
func (s *Store) DeleteDir(_ context.Context, dir string) error {
	if err := s.begin(OpDeleteDir, dir); err != nil {
		return err
	}
	defer s.mu.Unlock()
	keys := s.below(dir)
	if len(keys) == 0 {
		return nil
	}
	s.rev++
	for _, k := range keys {
		s.deleteLocked(k)
	}
	return nil
}

// deleteLocked removes key at the current revision and tells the watchers.
func (s *Store) deleteLocked(key string) {
	delete(s.keys, key)
	delete(s.ttls, key)
	s.emitLocked(store.Event{Type: store.Delete, KV: store.KV{Key: key, Version: s.rev}})
}

// Ping implements store.Store.
func (s *Store) Ping(_ context.Context) error {
	key := s.prefix
	if key == "" {
		key = "/"
	}
	if err := s.enter(OpPing, key); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

// Close implements store.Store: watches end; later calls fail with
// ErrClosed. It waits for the watch goroutines.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.done)
		s.clock.stopLocked()
		s.mu.Unlock()
	})
	s.wg.Wait()
	return nil
}
