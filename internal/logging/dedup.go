package logging

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
)

// uniqueKeys is a slog.Handler that writes each top-level key once per
// line. Loggers are built with With at several levels (the process ID, then
// the command's op, container and interface), and a call may pass a key
// again ("op" of a delegate, "pid" of a child): JSON with a key twice reads
// differently in every tool (jq keeps the last). The first value of a key
// wins: the logger's own, set by the outermost With. A later duplicate with
// the same value is dropped; with another value it is kept under the key
// with a suffix ("pid_2"), so nothing is lost and the key stays unique.
type uniqueKeys struct {
	next slog.Handler
	// keys are the top-level keys set by WithAttrs, and their values.
	keys map[string]slog.Value
	// grouped is set after WithGroup: attributes are then nested and no
	// longer clash with the top-level keys.
	grouped bool
}

// newUniqueKeys wraps next. The keys the handler writes itself (time,
// level, msg) are taken from the start.
func newUniqueKeys(next slog.Handler) *uniqueKeys {
	keys := map[string]slog.Value{}
	for _, k := range []string{slog.TimeKey, slog.LevelKey, slog.MessageKey, slog.SourceKey} {
		keys[k] = slog.Value{}
	}
	return &uniqueKeys{next: next, keys: keys}
}

// Enabled implements slog.Handler.
func (u *uniqueKeys) Enabled(ctx context.Context, l slog.Level) bool {
	return u.next.Enabled(ctx, l)
}

// WithAttrs implements slog.Handler.
func (u *uniqueKeys) WithAttrs(as []slog.Attr) slog.Handler {
	if u.grouped {
		return &uniqueKeys{next: u.next.WithAttrs(as), keys: u.keys, grouped: true}
	}
	keys := maps.Clone(u.keys)
	return &uniqueKeys{next: u.next.WithAttrs(unique(keys, as)), keys: keys}
}

// WithGroup implements slog.Handler.
func (u *uniqueKeys) WithGroup(name string) slog.Handler {
	if name == "" {
		return u
	}
	return &uniqueKeys{next: u.next.WithGroup(name), keys: u.keys, grouped: true}
}

// Handle implements slog.Handler.
func (u *uniqueKeys) Handle(ctx context.Context, r slog.Record) error {
	if u.grouped {
		return u.next.Handle(ctx, r)
	}
	as := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool { as = append(as, a); return true })
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(unique(maps.Clone(u.keys), as)...)
	return u.next.Handle(ctx, out)
}

// unique returns as without keys already in keys (renaming those whose
// value differs), and adds the keys it keeps to keys.
func unique(keys map[string]slog.Value, as []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		if a.Key == "" {
			out = append(out, a)
			continue
		}
		if prev, dup := keys[a.Key]; dup {
			if prev.Equal(a.Value.Resolve()) {
				continue
			}
			a.Key = freeKey(keys, a.Key)
		}
		keys[a.Key] = a.Value.Resolve()
		out = append(out, a)
	}
	return out
}

// freeKey returns key_2, key_3, … : the first not in keys.
func freeKey(keys map[string]slog.Value, key string) string {
	for n := 2; ; n++ {
		k := fmt.Sprintf("%s_%d", key, n)
		if _, used := keys[k]; !used {
			return k
		}
	}
}
