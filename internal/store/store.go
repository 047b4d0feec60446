// Package store is ratchet's etcd state: a small compare-and-swap key-value
// Store with an etcd v2 and an etcd v3 backend that behave identically, plus
// the typed records and key schema the pairing logic keeps in it.
//
// It knows nothing of netlink or CNI. Keys are full, clean, absolute paths
// under Config.Prefix ("/ratchet/pods/default/a"); values are opaque bytes
// (JSON for the records of this package).
package store

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/ratchet-cni/ratchet/internal/etcdcfg"
)

// Sentinel errors; test for them with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("key not found")
	// ErrExists: Create found the key already there.
	ErrExists = errors.New("key already exists")
	// ErrConflict: the key's version is not the one the caller expected.
	ErrConflict = errors.New("key changed since it was read")
	// ErrUnavailable: etcd is unreachable, timing out or has no leader; the
	// operation may succeed later (the CNI layer maps it to code 11).
	ErrUnavailable = errors.New("etcd unavailable")
	// ErrCompacted: a watch cannot resume because the history it needs is
	// gone (v3 compaction, v2 event index cleared); re-list and watch again.
	ErrCompacted = errors.New("watch history compacted")
	// ErrAPINotServed: the endpoint does not serve the configured etcd API
	// (v2 disabled, as in etcd 3.6+, or v3 against an etcd 2 server).
	ErrAPINotServed = errors.New("etcd API not served")
	// ErrAuth: authentication failed or the user lacks permission.
	ErrAuth = errors.New("etcd authentication or permission failure")
)

// API names of Config.API.
const (
	APIv2 = etcdcfg.APIv2
	APIv3 = etcdcfg.APIv3
)

// DefaultTimeout is the per-request timeout when Config.Timeout is zero.
const DefaultTimeout = etcdcfg.DefaultTimeout

// Config selects and configures a backend (see etcdcfg.Config).
type Config = etcdcfg.Config

// KV is one key with its value and version.
type KV struct {
	Key   string
	Value []byte
	// Version is the key's last modification: the v2 ModifiedIndex or the
	// v3 ModRevision. Update and Delete compare it.
	Version int64
}

// EventType says what happened to a key.
type EventType int

// Event types.
const (
	// Put: the key was created or changed; KV holds the new value.
	Put EventType = iota
	// Delete: the key was deleted or expired; KV.Value is nil.
	Delete
)

// String returns "put" or "delete".
func (t EventType) String() string {
	if t == Delete {
		return "delete"
	}
	return "put"
}

// Event is one change seen by Watch. When Err is set the watch broke (for
// example ErrCompacted): the channel closes after it and the caller re-lists.
type Event struct {
	Type EventType
	KV   KV
	Err  error
}

// Store is ratchet's view of etcd. Both backends behave identically.
//
// Put and Update make a key permanent: a TTL given to Create does not
// survive them.
type Store interface {
	// Get returns the key, or ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// List returns all keys below dir (recursive, leaves only) sorted by
	// key, and the store revision to watch after. A missing dir is empty.
	List(ctx context.Context, dir string) ([]KV, int64, error)
	// Create writes the key only if it is absent (else ErrExists); ttl > 0
	// makes it expire (v2 TTL, v3 lease; whole seconds, rounded up).
	Create(ctx context.Context, key string, val []byte, ttl time.Duration) (KV, error)
	// Update writes the key only if its version is still version:
	// ErrConflict if it changed, ErrNotFound if it is gone.
	Update(ctx context.Context, key string, val []byte, version int64) (KV, error)
	// Put writes the key unconditionally.
	Put(ctx context.Context, key string, val []byte) (KV, error)
	// Delete removes the key, only at version unless version is 0:
	// ErrNotFound if absent, ErrConflict if changed.
	Delete(ctx context.Context, key string, version int64) error
	// DeleteDir removes everything below dir; a missing dir is fine.
	DeleteDir(ctx context.Context, dir string) error
	// Watch sends the changes below dir (recursive) strictly after
	// afterRev; 0 means from this call on (from when etcd is reached if it
	// is unreachable now; it waits up to Timeout to find out). It rides out
	// etcd restarts; the channel closes when ctx ends, the store is closed,
	// or after an Event with Err.
	Watch(ctx context.Context, dir string, afterRev int64) <-chan Event
	// Ping checks that etcd is reachable and serves the configured API.
	Ping(ctx context.Context) error
	// Close releases the client; watches end.
	Close() error
}

// New returns the backend cfg.API selects. It does not wait for etcd, except
// that a v3 client with a username authenticates at once.
func New(cfg Config) (Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints configured")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.Prefix = etcdcfg.NormalizePrefix(cfg.Prefix)
	switch cfg.API {
	case "", APIv2:
		return newV2(cfg)
	case APIv3:
		return newV3(cfg)
	default:
		return nil, fmt.Errorf("etcd.api %q: want %q or %q", cfg.API, APIv2, APIv3)
	}
}

// CheckKey returns an error unless key is a clean absolute path under
// prefix whose segments v2 would not hide (a leading "_"). Every backend
// (and memstore) checks keys with it.
func CheckKey(prefix, key string) error {
	if key == "" || key[0] != '/' || path.Clean(key) != key || key == "/" {
		return fmt.Errorf("invalid key %q: want a clean absolute path", key)
	}
	if prefix != "" && key != prefix && !strings.HasPrefix(key, prefix+"/") {
		return fmt.Errorf("invalid key %q: not under prefix %q", key, prefix)
	}
	for _, seg := range strings.Split(key[1:], "/") {
		if strings.HasPrefix(seg, "_") {
			return fmt.Errorf("invalid key %q: segment %q starts with '_' (hidden in etcd v2)", key, seg)
		}
	}
	return nil
}

// checkKey is CheckKey, under the name the backends call.
func checkKey(prefix, key string) error { return CheckKey(prefix, key) }

// TTLSeconds rounds a TTL up to whole seconds (etcd's unit), at least 1.
func TTLSeconds(ttl time.Duration) int64 {
	s := int64((ttl + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// ttlSeconds is TTLSeconds, under the name the backends call.
func ttlSeconds(ttl time.Duration) int64 { return TTLSeconds(ttl) }

// unavailable wraps cause in ErrUnavailable, naming the endpoints.
func unavailable(endpoints []string, cause error) error {
	return fmt.Errorf("%w at %s: %w", ErrUnavailable, strings.Join(endpoints, ","), cause)
}

// apiNotServed is the error for a cluster that does not serve api.
func apiNotServed(endpoints []string, api, detail string) error {
	other := APIv3
	if api == APIv3 {
		other = APIv2
	}
	if detail != "" {
		detail = " (it is " + detail + ")"
	}
	return fmt.Errorf("etcd at %s does not serve the %s API; set etcd.api to %q%s: %w",
		strings.Join(endpoints, ","), api, other, detail, ErrAPINotServed)
}

// backoff waits d (bounded by ctx) and returns the next, doubled up to max.
func backoff(ctx context.Context, d, max time.Duration) (time.Duration, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return d, false
	case <-t.C:
	}
	if d *= 2; d > max {
		d = max
	}
	return d, true
}

// send delivers ev unless ctx ends first.
func send(ctx context.Context, ch chan<- Event, ev Event) bool {
	select {
	case ch <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
