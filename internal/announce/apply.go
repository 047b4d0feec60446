package announce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// Action says what Apply or Delete did with one record.
type Action string

// Actions.
const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
	Deleted   Action = "deleted"
	Absent    Action = "absent"
	// Kept: Delete left a record that differs from what the input would
	// announce (someone else's); Force deletes it.
	Kept Action = "kept"
)

// Change is what happened to one record's key.
type Change struct {
	Key    string `json:"key"`
	Pod    string `json:"pod"`
	Action Action `json:"action"`
}

// maxRetries bounds the compare-and-swap loops on one key.
const maxRetries = 10

// written is a write of this run, to undo it: prev is the value before
// (nil: the key was created), version the key's version after the write.
type written struct {
	key     string
	prev    []byte
	version int64
}

// Apply writes the records. A key that already holds an equal value is
// left alone (its version does not change), so applying the same records
// twice changes nothing. Each write is a compare-and-swap against what was
// read. If a write fails, what this call wrote is undone (created keys are
// deleted, updated keys get their previous value back) and the error says
// which pod failed.
func Apply(ctx context.Context, kv store.Store, k store.Keys, recs []Record) ([]Change, error) {
	var (
		changes []Change
		done    []written
	)
	for _, r := range recs {
		key := k.Announce(r.Namespace, r.Name)
		action, w, err := put(ctx, kv, key, r.Labels)
		if err != nil {
			err = fmt.Errorf("announce %s at %s: %w", r, key, err)
			if uerr := undo(context.WithoutCancel(ctx), kv, done); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undo this run's writes: %w", uerr))
			}
			return nil, err
		}
		if action != Unchanged {
			done = append(done, w)
		}
		changes = append(changes, Change{Key: key, Pod: r.String(), Action: action})
	}
	return changes, nil
}

// put makes key hold labels, unless it already does.
func put(ctx context.Context, kv store.Store, key string, labels map[string]string) (Action, written, error) {
	val, err := store.Encode(labels)
	if err != nil {
		return "", written{}, err
	}
	for range maxRetries {
		cur, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			res, err := kv.Create(ctx, key, val, 0)
			if errors.Is(err, store.ErrExists) {
				continue
			}
			return Created, written{key: key, version: res.Version}, err
		case err != nil:
			return "", written{}, err
		case equal(cur.Value, labels):
			return Unchanged, written{}, nil
		}
		res, err := kv.Update(ctx, key, val, cur.Version)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			continue
		}
		return Updated, written{key: key, prev: cur.Value, version: res.Version}, err
	}
	return "", written{}, fmt.Errorf("%w: changed %d times while writing", store.ErrConflict, maxRetries)
}

// undo reverts writes, newest first; a key changed since by someone else
// is left as it is.
func undo(ctx context.Context, kv store.Store, done []written) error {
	var errs []error
	for i := len(done) - 1; i >= 0; i-- {
		w := done[i]
		var err error
		if w.prev == nil {
			err = kv.Delete(ctx, w.key, w.version)
		} else {
			_, err = kv.Update(ctx, w.key, w.prev, w.version)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
			errs = append(errs, fmt.Errorf("%s: %w", w.key, err))
		}
	}
	return errors.Join(errs...)
}

// equal reports whether a stored value is the JSON object labels.
func equal(val []byte, labels map[string]string) bool {
	var m map[string]string
	return json.Unmarshal(val, &m) == nil && maps.Equal(m, labels)
}

// Delete removes the records' keys. Unless force is set, a key is removed
// only while it holds exactly the record (else it is Kept): a record that
// someone changed since is not this input's to remove. Missing keys are
// Absent. Errors are collected; Delete goes on with the other records.
func Delete(ctx context.Context, kv store.Store, k store.Keys, recs []Record, force bool) ([]Change, error) {
	var (
		changes []Change
		errs    []error
	)
	for _, r := range recs {
		key := k.Announce(r.Namespace, r.Name)
		action, err := remove(ctx, kv, key, r.Labels, force)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove the record of %s at %s: %w", r, key, err))
			continue
		}
		changes = append(changes, Change{Key: key, Pod: r.String(), Action: action})
	}
	return changes, errors.Join(errs...)
}

// remove deletes key if it holds labels (or force is set).
func remove(ctx context.Context, kv store.Store, key string, labels map[string]string, force bool) (Action, error) {
	for range maxRetries {
		cur, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return Absent, nil
		case err != nil:
			return "", err
		case !force && !equal(cur.Value, labels):
			return Kept, nil
		}
		err = kv.Delete(ctx, key, cur.Version)
		switch {
		case err == nil:
			return Deleted, nil
		case errors.Is(err, store.ErrNotFound):
			return Absent, nil
		case !errors.Is(err, store.ErrConflict):
			return "", err
		}
	}
	return "", fmt.Errorf("%w: changed %d times while deleting", store.ErrConflict, maxRetries)
}
