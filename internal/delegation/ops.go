package delegation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/config"
)

// ErrAttached is matched by the error of an ADD for an attachment (container
// ID and interface) whose earlier ADD finished and was not deleted.
var ErrAttached = errors.New("attachment exists: ADD without DEL in between")

// Add runs the delegates in order. The cache is written before the first
// one runs; if any delegate fails, those already added are deleted in
// reverse order and the cache is removed. It returns the master's Result
// converted to cniVersion.
//
// A repeated ADD (a runtime retry, which the CNI spec forbids without a DEL
// in between) of an attachment whose earlier ADD finished is refused with
// ErrAttached before anything is run or written: running the delegates
// again could only fail against the live interfaces, or half succeed, and
// rolling either back would DEL the live attachment's delegates and remove
// its cache, so that its CHECK and DEL lose their state. The live
// attachment stays as it is; DEL, then ADD, to make it again. A cache
// without results (an ADD killed half-way) does not count: that ADD is
// retried.
func (r *Runner) Add(ctx context.Context, att Attachment, cniVersion string, delegates []config.Delegate) (types.Result, error) {
	if err := r.checkNotAttached(att); err != nil {
		return nil, err
	}
	cache := &Cache{
		ContainerID: att.ContainerID, IfName: att.IfName, NetNS: att.NetNS, Args: att.Args,
		CNIVersion: cniVersion, Delegates: delegates,
	}
	if err := r.writeCache(cache); err != nil {
		return nil, err
	}
	var master types.Result
	results := make([]json.RawMessage, 0, len(delegates))
	for i, d := range delegates {
		res, err := r.addOne(ctx, i, att, d)
		if err != nil {
			cache.Results = results
			n := i
			if d.IsChain() {
				// Plugins of the chain before the failed one are in place:
				// DEL the whole chain, as a runtime does after libcni's
				// AddNetworkList failed.
				n = i + 1
			}
			return nil, r.rollback(ctx, att, cache, n, err)
		}
		raw, err := json.Marshal(res)
		if err != nil {
			addErr := &Error{Index: i, Type: d.Type, IfName: d.IfName, Op: "ADD", Err: fmt.Errorf("encode result: %w", err)}
			cache.Results = results
			return nil, r.rollback(ctx, att, cache, i+1, addErr)
		}
		results = append(results, raw)
		if d.Master {
			master = res
		}
	}
	cache.Results = results
	if err := r.writeCache(cache); err != nil {
		return nil, r.rollback(ctx, att, cache, len(delegates), err)
	}
	converted, err := master.GetAsVersion(cniVersion)
	if err != nil {
		err = fmt.Errorf("convert master result to %s: %w", cniVersion, err)
		return nil, r.rollback(ctx, att, cache, len(delegates), err)
	}
	return converted, nil
}

// addOne runs ADD of delegate i and returns its Result.
func (r *Runner) addOne(ctx context.Context, i int, att Attachment, d config.Delegate) (types.Result, error) {
	if d.IsChain() {
		return r.addChain(ctx, i, att, d)
	}
	var res types.Result
	if err := r.call(ctx, "ADD", att, d, d.Conf, &res); err != nil {
		return nil, &Error{Index: i, Type: d.Type, IfName: d.IfName, Op: "ADD", Err: err}
	}
	return res, nil
}

// checkNotAttached returns ErrAttached when att has the cache of a
// finished ADD.
func (r *Runner) checkNotAttached(att Attachment) error {
	prev, err := r.ReadCache(att.ContainerID, att.IfName)
	if err != nil || len(prev.Results) < len(prev.Delegates) {
		return nil
	}
	return fmt.Errorf("ADD %s/%s (netns %s): %w; DEL it first", att.ContainerID, att.IfName, prev.NetNS, ErrAttached)
}

// rollback deletes delegates [0, n) in reverse order and removes the cache,
// returning cause joined with any rollback failure.
func (r *Runner) rollback(ctx context.Context, att Attachment, cache *Cache, n int, cause error) error {
	partial := *cache
	partial.Delegates = cache.Delegates[:n]
	partial.Results = cache.Results[:min(n, len(cache.Results))]
	if err := r.delAll(ctx, att, &partial); err != nil {
		r.log().Error("rollback left delegates behind", "container", att.ContainerID, "err", err)
		return errors.Join(cause, fmt.Errorf("rollback: %w", err))
	}
	if err := r.removeCache(att.ContainerID, att.IfName); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// Del deletes the delegates of an attachment in reverse order, using the
// cache written at ADD; a missing or corrupt cache falls back to fallback
// (the current config). It goes on past failures and returns them joined;
// the cache is removed only when every delegate's DEL succeeded. Within a
// chain, the first failing plugin stops the chain's DEL (the CNI spec's
// rule); the other delegates are still deleted.
func (r *Runner) Del(ctx context.Context, att Attachment, fallback []config.Delegate) error {
	cache, err := r.ReadCache(att.ContainerID, att.IfName)
	if err != nil {
		if !errors.Is(err, ErrNoCache) {
			r.log().Warn("cache unusable, deleting with the current config", "container", att.ContainerID, "err", err)
		}
		cache = &Cache{ContainerID: att.ContainerID, IfName: att.IfName, Delegates: fallback}
	}
	if err := r.delAll(ctx, att, cache); err != nil {
		return err
	}
	return r.removeCache(att.ContainerID, att.IfName)
}

func (r *Runner) delAll(ctx context.Context, att Attachment, cache *Cache) error {
	var errs []error
	for i := len(cache.Delegates) - 1; i >= 0; i-- {
		d := cache.Delegates[i]
		if d.IsChain() {
			if err := r.delChain(ctx, i, att, d); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		conf, err := withPrevResult(d.Conf, resultAt(cache, i))
		if err == nil {
			err = r.call(ctx, "DEL", att, d, conf, nil)
		}
		if err != nil {
			errs = append(errs, &Error{Index: i, Type: d.Type, IfName: d.IfName, Op: "DEL", Err: err})
		}
	}
	return errors.Join(errs...)
}

func resultAt(c *Cache, i int) json.RawMessage {
	if i < len(c.Results) {
		return c.Results[i]
	}
	return nil
}

// Check runs each delegate's CHECK with the Result it returned at ADD as
// prevResult. prev (the runtime's prevResult) stands in for the master's
// when the cache has none. A chain's plugins get the chain's Result that
// libcni cached at ADD.
func (r *Runner) Check(ctx context.Context, att Attachment, prev json.RawMessage) error {
	cache, err := r.ReadCache(att.ContainerID, att.IfName)
	if err != nil {
		return fmt.Errorf("check %s/%s: %w", att.ContainerID, att.IfName, err)
	}
	var errs []error
	for i, d := range cache.Delegates {
		if d.IsChain() {
			if err := r.checkChain(ctx, i, att, d); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		p := resultAt(cache, i)
		if p == nil && d.Master {
			p = prev
		}
		if p == nil {
			errs = append(errs, &Error{Index: i, Type: d.Type, IfName: d.IfName, Op: "CHECK", Err: errors.New("no result recorded at ADD")})
			continue
		}
		conf, err := withPrevResult(d.Conf, p)
		if err == nil && atLeast(delegateVersion(d), "0.4.0") {
			err = r.call(ctx, "CHECK", att, d, conf, nil)
		}
		if err != nil {
			errs = append(errs, &Error{Index: i, Type: d.Type, IfName: d.IfName, Op: "CHECK", Err: err})
		}
	}
	return errors.Join(errs...)
}
