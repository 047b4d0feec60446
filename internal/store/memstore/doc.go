// Package memstore is an in-memory store.Store for tests: the semantics of
// the etcd v3 backend (one global revision, KV.Version = the key's mod
// revision, CAS on it, TTL keys that expire with a Delete event, recursive
// watches with a bounded, compactable history), plus fault injection
// (SetUnavailable, FailNext, OnNext), a clock tests can move (Advance,
// WithClock) and call counters (Ops). It needs no etcd and no root.
//
// Where it differs from the real backends:
//
//   - The keyspace is flat, as in v3: "/p/a" and "/p/a/b" can both be keys
//     (etcd v2 refuses a key where a directory is, and the reverse).
//   - Revisions follow v3, not v2: only a change bumps the revision (a
//     failed CAS, a Delete of nothing or a DeleteDir of an empty dir does
//     not); one DeleteDir is one revision shared by its Delete events.
//   - TTLs are rounded up to whole seconds like both backends, but there is
//     no minimum lease TTL (etcd v3 has one, about 2s in the tests), and a
//     key expires at its deadline: on the next call that sees it, Expire,
//     Advance, or (real clock only) a timer.
//   - The history a watch can resume from holds the last WithHistory events
//     (default 1000, like etcd v2's event index; v3 keeps everything until
//     a compaction). Compact forgets it up to a revision, like v3.
//   - While SetUnavailable(true), calls fail with ErrUnavailable and
//     watches stay open but hold their events (expiries still happen, as on
//     a partitioned server); they deliver them when it is lifted, as the
//     real watches resume. A Watch started meanwhile starts at the current
//     revision at once (the real ones start when etcd is reached).
//   - Errors name no endpoints; ErrAuth and ErrAPINotServed never occur.
//     After Close, calls fail with ErrClosed (v2 would go on, v3 fails with
//     a gRPC Canceled error).
package memstore
