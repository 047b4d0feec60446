// Package delegation runs ratchet's delegate plugins the way Multus does: the
// master delegate on the runtime's interface, the others on net1, net2, …,
// with a per-attachment cache written before the first delegate runs so that
// DEL can undo everything in reverse order, even after a crash. A delegate
// may be a chain of plugins, which libcni runs with its rules for a network
// configuration list (prevResult from plugin to plugin, DEL in reverse).
package delegation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/config"
)

// DefaultTimeout bounds one delegate invocation.
const DefaultTimeout = 90 * time.Second

// Runner runs delegates for one plugin invocation.
type Runner struct {
	// Exec runs plugin binaries; nil means the real executor.
	Exec invoke.Exec
	// Path is CNI_PATH, where delegate binaries are looked up.
	Path string
	// CacheDir holds one cache file per attachment.
	CacheDir string
	// Timeout bounds each delegate call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Log receives per-delegate events; nil discards them.
	Log *slog.Logger
}

// Attachment identifies what the runtime asked for.
type Attachment struct {
	ContainerID string
	NetNS       string
	// IfName is the runtime's CNI_IFNAME, given to the master delegate.
	IfName string
	// Args is CNI_ARGS, passed to every delegate.
	Args string
}

// Error is the failure of one delegate; Err keeps the delegate's own
// *types.Error when it returned one.
type Error struct {
	Index int
	// Type is the delegate's Type (for a chain, its plugins joined by "+").
	Type string
	// Plugin is, for a chain, the plugin of the chain that failed ("" when
	// none did: the chain failed around its plugins).
	Plugin string
	IfName string
	Op     string
	Err    error
}

func (e *Error) Error() string {
	if e.Plugin != "" && !strings.Contains(e.Err.Error(), `type="`+e.Plugin+`"`) { // libcni names it in ADD and DEL errors
		return fmt.Sprintf("delegate %d (%s on %s) %s: plugin %s: %v", e.Index, e.Type, e.IfName, e.Op, e.Plugin, e.Err)
	}
	return fmt.Sprintf("delegate %d (%s on %s) %s: %v", e.Index, e.Type, e.IfName, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func (r *Runner) exec() invoke.Exec {
	if r.Exec != nil {
		return r.Exec
	}
	return &invoke.DefaultExec{RawExec: &invoke.RawExec{}, PluginDecoder: version.PluginDecoder{}}
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (r *Runner) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

// call runs one CNI command of one delegate. With a non-nil result pointer
// the plugin's Result is decoded into it.
func (r *Runner) call(ctx context.Context, op string, att Attachment, d config.Delegate, conf []byte, result *types.Result) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	ex := r.exec()
	path, err := ex.FindInPath(d.Type, filepath.SplitList(r.Path))
	if err != nil {
		return err
	}
	args := &invoke.Args{
		Command:       op,
		ContainerID:   att.ContainerID,
		NetNS:         att.NetNS,
		IfName:        d.IfName,
		PluginArgsStr: att.Args,
		Path:          r.Path,
	}
	start := time.Now()
	if result != nil {
		*result, err = invoke.ExecPluginWithResult(ctx, path, conf, args, ex)
	} else {
		err = invoke.ExecPluginWithoutResult(ctx, path, conf, args, ex)
	}
	r.log().Debug("delegate", "delegateOp", op, "type", d.Type, "delegateIfname", d.IfName, "took", time.Since(start), "err", err)
	return err
}

// withPrevResult returns the delegate's netconf with prevResult set.
func withPrevResult(conf []byte, prev json.RawMessage) ([]byte, error) {
	if len(prev) == 0 {
		return conf, nil
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(conf, &m); err != nil {
		return nil, fmt.Errorf("decode delegate netconf: %w", err)
	}
	m["prevResult"] = prev
	return json.Marshal(m)
}

// delegateVersion is the cniVersion of a delegate's netconf.
func delegateVersion(d config.Delegate) string {
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	_ = json.Unmarshal(d.Conf, &v)
	return v.CNIVersion
}

// atLeast reports whether version v is at least min (false when unparsable).
func atLeast(v, min string) bool {
	ok, err := version.GreaterThanOrEqualTo(v, min)
	return err == nil && ok
}

// Status runs each delegate's STATUS (delegates older than 1.1.0 have none).
func (r *Runner) Status(ctx context.Context, delegates []config.Delegate) error {
	var errs []error
	for i, d := range delegates {
		if !atLeast(delegateVersion(d), "1.1.0") {
			continue
		}
		if d.IsChain() {
			if err := r.statusChain(ctx, i, d); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := r.call(ctx, "STATUS", Attachment{}, d, d.Conf, nil); err != nil {
			errs = append(errs, &Error{Index: i, Type: d.Type, IfName: d.IfName, Op: "STATUS", Err: err})
		}
	}
	return errors.Join(errs...)
}
