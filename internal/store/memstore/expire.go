package memstore

import (
	"fmt"
	"sort"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// clock is the store's time: now (the real clock unless WithClock) plus
// what Advance added. With the real clock a timer expires keys on time.
type clock struct {
	now    func() time.Time
	offset time.Duration
	timer  *time.Timer
	custom bool
}

func (c *clock) init() { c.now = time.Now }

// nowLocked is the store's current time.
func (c *clock) nowLocked() time.Time { return c.now().Add(c.offset) }

func (c *clock) stopLocked() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// Advance moves the store's clock forward by d and expires the keys that
// are then due. It works with either clock.
func (s *Store) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d > 0 {
		s.clock.offset += d
	}
	s.expireLocked()
}

// Expire deletes the keys whose TTL is over now, one revision and one
// Delete event each (as etcd revokes one lease per key), in deadline order.
// Every call does it first; Expire is for a test on a WithClock clock.
func (s *Store) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
}

func (s *Store) expireLocked() {
	if s.isClosed() {
		return
	}
	now := s.clock.nowLocked()
	var due []string
	for k, d := range s.ttls {
		if !d.After(now) {
			due = append(due, k)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		di, dj := s.ttls[due[i]], s.ttls[due[j]]
		return di.Before(dj) || di.Equal(dj) && due[i] < due[j]
	})
	for _, k := range due {
		s.rev++
		s.deleteLocked(k)
	}
	s.armLocked()
}

// armLocked sets the timer (real clock only) for the earliest deadline.
func (s *Store) armLocked() {
	if s.clock.custom || s.isClosed() {
		return
	}
	var next time.Time
	for _, d := range s.ttls {
		if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	s.clock.stopLocked()
	if next.IsZero() {
		return
	}
	s.clock.timer = time.AfterFunc(next.Sub(s.clock.nowLocked()), s.Expire)
}

// Compact forgets the history up to and including rev, like an etcd v3
// compaction: a Watch after an older revision gets store.ErrCompacted.
func (s *Store) Compact(rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev > s.rev {
		return fmt.Errorf("compact to %d: %w", rev, errFutureRev(s.rev))
	}
	if rev <= s.compacted {
		return fmt.Errorf("compact to %d: already compacted to %d: %w", rev, s.compacted, store.ErrCompacted)
	}
	s.compacted = rev
	i := sort.Search(len(s.events), func(i int) bool { return s.events[i].KV.Version > rev })
	s.events = append([]store.Event(nil), s.events[i:]...)
	return nil
}

func errFutureRev(cur int64) error {
	return fmt.Errorf("revision is after the current one (%d)", cur)
}

// Revision returns the store's current revision.
func (s *Store) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}
