package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"path"
	"strconv"
)

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// AllocateVNI reserves a VNI in [min, max] for owner (a link key) and
// returns it. The reservation is a Create of Keys.VNI(n) holding owner, so
// two callers never get the same VNI. Probing starts at a hash of owner and
// skips the reservations already listed. If owner already holds a VNI in the
// range, that one is returned (idempotent; two racing calls for one owner
// end on the same VNI unless a VNI is released while they probe).
func AllocateVNI(ctx context.Context, s Store, k Keys, owner string, min, max uint32) (uint32, error) {
	if owner == "" || min == 0 || min > max || max > MaxVNI {
		return 0, fmt.Errorf("allocate VNI: invalid owner %q or range [%d, %d]", owner, min, max)
	}
	taken, mine, err := vniReservations(ctx, s, k, owner, min, max)
	if err != nil || mine != 0 {
		return mine, err
	}
	size := uint64(max-min) + 1
	if uint64(len(taken)) >= size {
		return 0, fmt.Errorf("allocate VNI for %s: all %d VNIs in [%d, %d] are taken", owner, size, min, max)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(owner))
	start := uint64(h.Sum32()) % size
	for i := uint64(0); i < size; i++ {
		n := min + uint32((start+i)%size)
		if taken[n] {
			continue
		}
		ok, err := tryVNI(ctx, s, k, owner, n)
		if err != nil {
			return 0, fmt.Errorf("allocate VNI for %s: %w", owner, err)
		}
		if ok {
			return n, nil
		}
	}
	return 0, fmt.Errorf("allocate VNI for %s: no free VNI in [%d, %d]", owner, min, max)
}

// vniReservations lists the VNIs taken in [min, max] and the one owner
// holds there (0 if none).
func vniReservations(ctx context.Context, s Store, k Keys, owner string, min, max uint32) (map[uint32]bool, uint32, error) {
	kvs, _, err := s.List(ctx, k.VNIs())
	if err != nil {
		return nil, 0, fmt.Errorf("allocate VNI for %s: %w", owner, err)
	}
	taken := make(map[uint32]bool, len(kvs))
	for _, kv := range kvs {
		n, err := strconv.ParseUint(path.Base(kv.Key), 10, 32)
		if err != nil || uint32(n) < min || uint32(n) > max {
			continue
		}
		if string(kv.Value) == owner {
			return nil, uint32(n), nil
		}
		taken[uint32(n)] = true
	}
	return taken, 0, nil
}

// tryVNI creates the reservation of n for owner; it reports whether owner
// holds n afterwards.
func tryVNI(ctx context.Context, s Store, k Keys, owner string, n uint32) (bool, error) {
	_, err := s.Create(ctx, k.VNI(n), []byte(owner), 0)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, ErrExists) {
		return false, err
	}
	kv, err := s.Get(ctx, k.VNI(n))
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil // released meanwhile; move on
	case err != nil:
		return false, err
	}
	return string(kv.Value) == owner, nil
}

// ReleaseVNI deletes the reservation of vni if owner holds it. A missing
// reservation, or one held by another owner, is left alone without error.
func ReleaseVNI(ctx context.Context, s Store, k Keys, vni uint32, owner string) error {
	key := k.VNI(vni)
	for attempt := 0; attempt < 3; attempt++ {
		kv, err := s.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("release VNI %d of %s: %w", vni, owner, err)
		}
		if string(kv.Value) != owner {
			return nil
		}
		err = s.Delete(ctx, key, kv.Version)
		if err == nil || errors.Is(err, ErrNotFound) {
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return fmt.Errorf("release VNI %d of %s: %w", vni, owner, err)
		}
	}
	return fmt.Errorf("release VNI %d of %s: %w", vni, owner, ErrConflict)
}
