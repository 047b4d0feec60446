package store

import (
	"context"
	"errors"
	"fmt"
)

// MaxRetries bounds every read-modify-write loop on one record: a record
// that changes this many times while it is being updated is contended
// beyond reason, and the caller gets ErrConflict.
const MaxRetries = 20

// ErrUnchanged, returned by an Update change function, leaves the record as
// it is; Update then returns the current record without writing.
var ErrUnchanged = errors.New("record unchanged")

// Update reads the JSON record at key, applies change to it and writes it
// back only if nobody wrote it meanwhile, retrying on conflict up to
// MaxRetries times. It returns the record as written (or as read, when
// change returned ErrUnchanged) and its version. A missing key is
// ErrNotFound; any other error of change ends the loop and is returned.
func Update[T any](ctx context.Context, s Store, key string, change func(*T) error) (T, int64, error) {
	for range MaxRetries {
		v, ver, err := GetJSON[T](ctx, s, key)
		if err != nil {
			return v, 0, err
		}
		if err := change(&v); errors.Is(err, ErrUnchanged) {
			return v, ver, nil
		} else if err != nil {
			return v, ver, err
		}
		kv, err := UpdateJSON(ctx, s, key, v, ver)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return v, kv.Version, err
	}
	var zero T
	return zero, 0, fmt.Errorf("update %s: %w %d times", key, ErrConflict, MaxRetries)
}

// DeleteIf deletes the JSON record at key if keep returns false for its
// current value, retrying when the record changes meanwhile. It reports
// whether it deleted the record; a missing key is not an error.
func DeleteIf[T any](ctx context.Context, s Store, key string, keep func(*T) bool) (bool, error) {
	for range MaxRetries {
		v, ver, err := GetJSON[T](ctx, s, key)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if keep(&v) {
			return false, nil
		}
		err = s.Delete(ctx, key, ver)
		if err == nil || errors.Is(err, ErrNotFound) {
			return err == nil, nil
		}
		if !errors.Is(err, ErrConflict) {
			return false, err
		}
	}
	return false, fmt.Errorf("delete %s: %w %d times", key, ErrConflict, MaxRetries)
}
