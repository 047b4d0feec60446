package delegation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/config"
)

// chainCacheDir is the directory under Runner.CacheDir where libcni keeps
// the final Result of each chain it added (its "results" cache): DEL and
// CHECK of a chain give that Result to every plugin as prevResult, as a
// runtime's libcni does for a network configuration list.
const chainCacheDir = "chains"

// chainRun is one CNI command of one chain delegate through libcni.
type chainRun struct {
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
	rt   *libcni.RuntimeConf
	exec *chainExec
}

// chain prepares libcni to run delegate d (a chain) for att: plugins from
// CNI_PATH, the chain's results cached under CacheDir, d's interface name.
func (r *Runner) chain(att Attachment, d config.Delegate) (*chainRun, error) {
	list, err := libcni.ConfListFromBytes(d.Conf)
	if err != nil {
		return nil, fmt.Errorf("parse chain netconf: %w", err)
	}
	ex := &chainExec{inner: r.exec(), args: att.Args, timeout: r.timeout(), log: r.log(), ifName: d.IfName}
	return &chainRun{
		cni:  libcni.NewCNIConfigWithCacheDir(filepath.SplitList(r.Path), filepath.Join(r.CacheDir, chainCacheDir), ex),
		list: list,
		rt:   &libcni.RuntimeConf{ContainerID: att.ContainerID, NetNS: att.NetNS, IfName: d.IfName},
		exec: ex,
	}, nil
}

// chainError is the failure of a chain delegate as a *Error naming the
// plugin of the chain that failed, when one did.
func chainError(i int, d config.Delegate, op string, run *chainRun, err error) *Error {
	e := &Error{Index: i, Type: d.Type, IfName: d.IfName, Op: op, Err: err}
	if run != nil {
		e.Plugin = run.exec.failedPlugin()
	}
	return e
}

// addChain runs ADD of a chain: its plugins in order, each given the
// previous one's Result as prevResult; the chain's Result is the last
// plugin's. libcni caches it for DEL and CHECK. A failure leaves the
// plugins that ran in place: the caller DELs the whole chain.
func (r *Runner) addChain(ctx context.Context, i int, att Attachment, d config.Delegate) (types.Result, error) {
	run, err := r.chain(att, d)
	if err != nil {
		return nil, chainError(i, d, "ADD", nil, err)
	}
	res, err := run.cni.AddNetworkList(ctx, run.list, run.rt)
	if err != nil {
		return nil, chainError(i, d, "ADD", run, err)
	}
	return res, nil
}

// delChain runs DEL of a chain: its plugins in reverse order, each given
// the Result cached at ADD as prevResult (cniVersion 0.4.0 and later);
// the first failure stops it, as the CNI spec says, and keeps that cache
// for the retry.
func (r *Runner) delChain(ctx context.Context, i int, att Attachment, d config.Delegate) error {
	run, err := r.chain(att, d)
	if err != nil {
		return chainError(i, d, "DEL", nil, err)
	}
	if err := run.cni.DelNetworkList(ctx, run.list, run.rt); err != nil {
		return chainError(i, d, "DEL", run, err)
	}
	return nil
}

// checkChain runs CHECK of a chain (cniVersion 0.4.0 and later, unless it
// sets disableCheck): its plugins in order, each given the Result cached at
// ADD as prevResult.
func (r *Runner) checkChain(ctx context.Context, i int, att Attachment, d config.Delegate) error {
	run, err := r.chain(att, d)
	if err != nil {
		return chainError(i, d, "CHECK", nil, err)
	}
	if run.list.DisableCheck || !atLeast(run.list.CNIVersion, "0.4.0") {
		return nil
	}
	prev, err := run.cni.GetNetworkListCachedResult(run.list, run.rt)
	if err == nil && prev == nil {
		err = errors.New("no result recorded at ADD")
	}
	if err == nil {
		err = run.cni.CheckNetworkList(ctx, run.list, run.rt)
	}
	if err != nil {
		return chainError(i, d, "CHECK", run, err)
	}
	return nil
}

// statusChain runs STATUS of a chain's plugins (cniVersion 1.1.0), stopping
// at the first failure, as libcni does.
func (r *Runner) statusChain(ctx context.Context, i int, d config.Delegate) error {
	run, err := r.chain(Attachment{}, d)
	if err != nil {
		return chainError(i, d, "STATUS", nil, err)
	}
	if err := run.cni.GetStatusNetworkList(ctx, run.list); err != nil {
		return chainError(i, d, "STATUS", run, err)
	}
	return nil
}

// gcChain runs GC of each plugin of a chain (cniVersion 1.1.0, unless it
// sets disableGC) with the chain's valid attachments, as libcni's
// GCNetworkList does after deleting the stale ones. ratchet deletes stale
// attachments itself, from its own cache: libcni's pass would take every
// cached attachment of the chain's network name for its own, and delegates
// may share a name.
func (r *Runner) gcChain(ctx context.Context, i int, d config.Delegate, valid []types.GCAttachment) error {
	run, err := r.chain(Attachment{}, d)
	if err != nil {
		return chainError(i, d, "GC", nil, err)
	}
	if run.list.DisableGC || !atLeast(run.list.CNIVersion, "1.1.0") {
		return nil
	}
	inject := map[string]any{
		"name":                      run.list.Name,
		"cniVersion":                run.list.CNIVersion,
		"cni.dev/valid-attachments": valid,
		"cni.dev/attachments":       valid, // the spec's earlier, wrong name (containernetworking/cni#1101)
	}
	var errs []error
	for _, p := range run.list.Plugins {
		conf, err := libcni.InjectConf(p, inject)
		if err == nil {
			err = r.call(ctx, "GC", Attachment{}, config.Delegate{Type: p.Network.Type, IfName: d.IfName}, conf.Bytes, nil)
		}
		if err != nil {
			errs = append(errs, &Error{Index: i, Type: d.Type, Plugin: p.Network.Type, IfName: d.IfName, Op: "GC", Err: err})
		}
	}
	return errors.Join(errs...)
}

// chainExec is the invoke.Exec libcni runs a chain's plugins with: each
// plugin call gets the runtime's CNI_ARGS verbatim (libcni would rebuild
// them from key/value pairs) and its own timeout, and is logged like a
// single delegate's call; an ADD Result comes back at the chain's version.
// It remembers the plugin that failed.
type chainExec struct {
	inner   invoke.Exec
	args    string
	timeout time.Duration
	log     *slog.Logger
	ifName  string

	mu     sync.Mutex
	failed string
}

// ExecPlugin runs one plugin of the chain.
func (e *chainExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	env := make([]string, 0, len(environ))
	op := ""
	for _, kv := range environ {
		if strings.HasPrefix(kv, "CNI_ARGS=") {
			kv = "CNI_ARGS=" + e.args
		}
		if v, ok := strings.CutPrefix(kv, "CNI_COMMAND="); ok {
			op = v
		}
		env = append(env, kv)
	}
	start := time.Now()
	out, err := e.inner.ExecPlugin(ctx, pluginPath, stdin, env)
	if err == nil && op == "ADD" {
		out, err = atConfVersion(stdin, out)
	}
	plugin := filepath.Base(pluginPath)
	e.log.Debug("delegate", "delegateOp", op, "type", plugin, "chained", true, "delegateIfname", e.ifName, "took", time.Since(start), "err", err)
	if err != nil {
		e.fail(plugin)
	}
	return out, err
}

// atConfVersion converts a plugin's ADD Result to the version of the
// netconf it was given (the chain's), when the plugin answered at another:
// the next plugin gets it as prevResult, and the chain's Result is at the
// chain's version.
func atConfVersion(stdin, out []byte) ([]byte, error) {
	var conf, res struct {
		CNIVersion string `json:"cniVersion"`
	}
	if json.Unmarshal(stdin, &conf) != nil || json.Unmarshal(out, &res) != nil ||
		res.CNIVersion == "" || res.CNIVersion == conf.CNIVersion {
		return out, nil // invoke reports a Result it cannot decode
	}
	r, err := create.Create(res.CNIVersion, out)
	if err != nil {
		return nil, fmt.Errorf("decode %s result: %w", res.CNIVersion, err)
	}
	c, err := r.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return nil, fmt.Errorf("convert %s result to the chain's %s: %w", res.CNIVersion, conf.CNIVersion, err)
	}
	return json.Marshal(c)
}

// FindInPath looks a plugin of the chain up in CNI_PATH.
func (e *chainExec) FindInPath(plugin string, paths []string) (string, error) {
	p, err := e.inner.FindInPath(plugin, paths)
	if err != nil {
		e.fail(plugin)
	}
	return p, err
}

// Decode decodes a plugin's VERSION answer.
func (e *chainExec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	return e.inner.Decode(jsonBytes)
}

func (e *chainExec) fail(plugin string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failed = plugin
}

func (e *chainExec) failedPlugin() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failed
}
