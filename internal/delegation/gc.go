package delegation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/config"
)

// GC deletes every cached attachment that is not in valid, then runs each
// delegate's GC (1.1.0 delegates) with the valid attachments translated to
// the delegate's own interface names. It returns the container IDs it
// deleted.
func (r *Runner) GC(ctx context.Context, valid []types.GCAttachment, delegates []config.Delegate) ([]string, error) {
	keep := map[[2]string]bool{}
	for _, v := range valid {
		keep[[2]string{v.ContainerID, v.IfName}] = true
	}
	cached, err := r.cachedAttachments()
	if err != nil {
		return nil, err
	}
	var errs []error
	var removed []string
	for _, a := range cached {
		if keep[a] {
			continue
		}
		att := Attachment{ContainerID: a[0], IfName: a[1]}
		if c, err := r.ReadCache(a[0], a[1]); err == nil {
			att.NetNS, att.Args = "", c.Args // the netns of a stale attachment is gone or not ours
		}
		if err := r.Del(ctx, att, delegates); err != nil {
			errs = append(errs, fmt.Errorf("gc %s/%s: %w", a[0], a[1], err))
			continue
		}
		removed = append(removed, a[0])
	}
	if err := r.gcDelegates(ctx, valid, delegates); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// gcDelegates runs each 1.1.0 delegate's GC with its own valid attachments
// (for a chain, each of its plugins').
func (r *Runner) gcDelegates(ctx context.Context, valid []types.GCAttachment, delegates []config.Delegate) error {
	var errs []error
	for i, d := range delegates {
		if !atLeast(delegateVersion(d), "1.1.0") {
			continue
		}
		own := make([]types.GCAttachment, 0, len(valid))
		for _, v := range valid {
			own = append(own, types.GCAttachment{ContainerID: v.ContainerID, IfName: r.delegateIfName(v, i, delegates)})
		}
		if d.IsChain() {
			if err := r.gcChain(ctx, i, d, own); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		conf, err := withValidAttachments(d.Conf, own)
		if err == nil {
			err = r.call(ctx, "GC", Attachment{}, d, conf, nil)
		}
		if err != nil {
			errs = append(errs, &Error{Index: i, Type: d.Type, IfName: d.IfName, Op: "GC", Err: err})
		}
	}
	return errors.Join(errs...)
}

// delegateIfName is the interface delegate i got for a valid attachment:
// from its cache when there is one, else from the current config.
func (r *Runner) delegateIfName(v types.GCAttachment, i int, delegates []config.Delegate) string {
	if c, err := r.ReadCache(v.ContainerID, v.IfName); err == nil && i < len(c.Delegates) {
		return c.Delegates[i].IfName
	}
	return config.NameDelegates(delegates, v.IfName)[i].IfName
}

func withValidAttachments(conf []byte, valid []types.GCAttachment) ([]byte, error) {
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(conf, &m); err != nil {
		return nil, fmt.Errorf("decode delegate netconf: %w", err)
	}
	b, err := json.Marshal(valid)
	if err != nil {
		return nil, err
	}
	m["cni.dev/valid-attachments"] = b
	return json.Marshal(m)
}
