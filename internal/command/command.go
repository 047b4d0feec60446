// Package command implements ratchet's CNI commands (ADD, DEL, CHECK,
// STATUS, GC) on top of delegation and, for ratchet pods, pairing through
// the node agent. It is the plugin's one place where errors become CNI
// errors; pairing errors come with the agent's codes.
package command

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/delegation"
	"github.com/ratchet-cni/ratchet/internal/logging"
)

// Pairer is the step after delegation for ratchet pods: it wires links at
// ADD, removes them at DEL, and so on. Each method decides itself whether
// the pod is a ratchet pod. The plugin's Pairer is the node agent.
type Pairer interface {
	// IsRatchet reports whether Add has work for the pod; it runs while
	// the delegates do. An error means "ask Add" (which reports it).
	IsRatchet(ctx context.Context, req *agentapi.Request) (bool, error)
	Add(ctx context.Context, req *agentapi.Request) error
	Del(ctx context.Context, req *agentapi.Request) error
	Check(ctx context.Context, req *agentapi.Request) error
	Status(ctx context.Context) error
	GC(ctx context.Context, valid []types.GCAttachment) error
	Close() error
}

// PairerFactory builds the Pairer for a loaded config (raw is the netconf
// as given); a nil Pairer means the config pairs nothing (delegation only).
type PairerFactory func(conf *config.NetConf, raw []byte, log *slog.Logger) (Pairer, error)

// Plugin is the ratchet CNI plugin.
type Plugin struct {
	// Exec runs delegate binaries; nil means the real executor.
	Exec invoke.Exec
	// NewPairer builds the pairing step; nil means delegation only.
	NewPairer PairerFactory
	// Getenv reads CNI_PATH; nil means os.Getenv.
	Getenv func(string) string
}

// Funcs returns the plugin's commands for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:    p.wrap("ADD", p.add),
		Del:    p.wrap("DEL", p.del),
		Check:  p.wrap("CHECK", p.check),
		Status: p.wrap("STATUS", p.status),
		GC:     p.wrap("GC", p.gc),
	}
}

// invocation is the per-command state: config, logger, delegate runner.
type invocation struct {
	conf   *config.NetConf
	log    *slog.Logger
	runner *delegation.Runner
	pairer Pairer
	args   *skel.CmdArgs
}

// wrap loads the config, opens the log, runs the command and turns its
// error into a CNI error, logging it once.
func (p *Plugin) wrap(op string, fn func(context.Context, *invocation) error) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) error {
		conf, err := config.Load(args.StdinData)
		if err != nil {
			return toCNIError(err)
		}
		log, closeLog := logging.Open(conf.LogFile, conf.LogLevel)
		defer closeLog()
		log = log.With("op", op, "container", args.ContainerID, "ifname", args.IfName)
		inv := &invocation{conf: conf, log: log, runner: p.runner(conf, log), args: args}
		if p.NewPairer != nil {
			pr, err := p.NewPairer(conf, args.StdinData, log)
			if err != nil {
				log.Error("pairing unavailable", "err", err)
				return toCNIError(err)
			}
			if pr != nil {
				defer pr.Close()
				inv.pairer = pr
			}
		}
		start := time.Now()
		err = fn(context.Background(), inv)
		if err != nil {
			log.Error("failed", "err", err, "took", time.Since(start))
			return toCNIError(err)
		}
		log.Info("done", "took", time.Since(start))
		return nil
	}
}

func (p *Plugin) runner(conf *config.NetConf, log *slog.Logger) *delegation.Runner {
	getenv := p.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	return &delegation.Runner{Exec: p.Exec, Path: getenv("CNI_PATH"), CacheDir: conf.CNIDir, Log: log}
}

func (inv *invocation) attachment() delegation.Attachment {
	a := inv.args
	return delegation.Attachment{ContainerID: a.ContainerID, NetNS: a.Netns, IfName: a.IfName, Args: a.Args}
}

func (inv *invocation) request() *agentapi.Request {
	a := inv.args
	req := &agentapi.Request{ContainerID: a.ContainerID, NetNS: a.Netns, IfName: a.IfName, Args: a.Args, Netconf: a.StdinData}
	for _, d := range inv.conf.PrepDelegates(a.IfName) {
		req.Reserved = append(req.Reserved, d.IfName)
	}
	return req
}

func (p *Plugin) add(ctx context.Context, inv *invocation) error {
	delegates := inv.conf.PrepDelegates(inv.args.IfName)
	isRatchet := inv.lookAhead(ctx)
	result, err := inv.runner.Add(ctx, inv.attachment(), inv.conf.CNIVersion, delegates)
	if err != nil {
		return err
	}
	success := false
	defer func() {
		if !success {
			if err := inv.runner.Del(ctx, inv.attachment(), delegates); err != nil {
				inv.log.Error("rolling back delegates", "err", err)
			}
		}
	}()
	if inv.pairer != nil && <-isRatchet {
		if err := inv.pairer.Add(ctx, inv.request()); err != nil {
			return err
		}
	}
	if err := types.PrintResult(result, inv.conf.CNIVersion); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	success = true
	return nil
}

// lookAhead asks the pairer, while the delegates run, whether the pod is a
// ratchet pod: a plain pod's ADD then costs no pairing step after them.
// The answer is true when the question failed (Add reports why).
func (inv *invocation) lookAhead(ctx context.Context) <-chan bool {
	ch := make(chan bool, 1)
	if inv.pairer == nil {
		ch <- false
		return ch
	}
	go func() {
		ok, err := inv.pairer.IsRatchet(ctx, inv.request())
		ch <- ok || err != nil
	}()
	return ch
}

// del undoes pairing (best effort: its failure is logged, the leftovers are
// GC's) and then the delegates, whose failure is the command's.
func (p *Plugin) del(ctx context.Context, inv *invocation) error {
	if inv.pairer != nil {
		if err := inv.pairer.Del(ctx, inv.request()); err != nil {
			inv.log.Error("pairing teardown incomplete; GC will finish it", "err", err)
		}
	}
	return inv.runner.Del(ctx, inv.attachment(), inv.conf.PrepDelegates(inv.args.IfName))
}

func (p *Plugin) check(ctx context.Context, inv *invocation) error {
	var prev struct {
		PrevResult json.RawMessage `json:"prevResult"`
	}
	if err := json.Unmarshal(inv.args.StdinData, &prev); err != nil || len(prev.PrevResult) == 0 {
		return &config.Error{Field: "prevResult", Msg: "CHECK needs the prevResult of ADD"}
	}
	if err := inv.runner.Check(ctx, inv.attachment(), prev.PrevResult); err != nil {
		return err
	}
	if inv.pairer != nil {
		return inv.pairer.Check(ctx, inv.request())
	}
	return nil
}

func (p *Plugin) status(ctx context.Context, inv *invocation) error {
	if inv.pairer != nil {
		if err := inv.pairer.Status(ctx); err != nil {
			return statusError(err)
		}
	}
	return inv.runner.Status(ctx, inv.conf.PrepDelegates("eth0"))
}

func (p *Plugin) gc(ctx context.Context, inv *invocation) error {
	valid := inv.conf.ValidAttachments
	removed, err := inv.runner.GC(ctx, valid, inv.conf.PrepDelegates("eth0"))
	inv.log.Info("gc delegates", "removed", removed)
	if inv.pairer != nil {
		if perr := inv.pairer.GC(ctx, valid); perr != nil {
			return fmt.Errorf("gc pairing records: %w (delegates: %v)", perr, err)
		}
	}
	return err
}
