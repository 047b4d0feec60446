// Package ctl is ratchetctl, the operator tool of ratchet's etcd state: it
// shows pods, links and agents (status, a Graphviz topology, agents),
// writes example announced records (populate, as the first ratchet's
// etcd_populator.sh), changes a link's impairment and admin state (link
// set|clear|down|up, which the agents apply), and removes records (delete,
// gc) with the semantics of the plugin's DEL, records only.
package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"syscall"

	"github.com/ratchet-cni/ratchet/internal/announce"
	"github.com/ratchet-cni/ratchet/internal/etcdflag"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Exit codes of ratchetctl.
const (
	ExitOK       = 0
	ExitFailure  = 1 // etcd unreachable or failing
	ExitBadInput = 2 // bad command line or input
)

// app is one ratchetctl run.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	etcd           etcdflag.Flags
	namespace      string
	cfg            store.Config
}

// command is a sub-command.
type command struct {
	synopsis string
	run      func(ctx context.Context, a *app, args []string) error
}

var commands = map[string]command{
	"status":   {"status [-n NS] [-o table|json]", runStatus},
	"topology": {"topology [-n NS] [-o dot]", runTopology},
	"populate": {"populate primary|pair [--container ID] [-n NS] | populate --file TOPOLOGY.yaml [--pod-name NAME]", runPopulate},
	"delete":   {"delete [-n NS] [--dry-run] POD | delete --all --yes", runDelete},
	"gc":       {"gc [--host NAME] [-n NS] [--dry-run]", runGC},
	"agents":   {"agents [-o table|json]", runAgents},
	"link": {"link set NS/LINK [--end a|b] [--delay D] [--jitter D] [--loss P] [--rate R] [--corrupt P] [--duplicate P] [--reorder P]\n" +
		"  ratchetctl [etcd flags] link clear NS/LINK [--end a|b] | link down NS/LINK | link up NS/LINK", runLink},
}

// usageError is a bad command line.
type usageError struct{ msg string }

// Error returns the message.
func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// Main runs ratchetctl with args (without the program name) and returns
// the exit code. getenv reads the environment (ETCD_*).
func Main(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv}
	fs := a.flagSet("ratchetctl")
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			err = usagef("%v", err)
		}
		return a.fail(err)
	}
	if fs.NArg() == 0 || fs.Arg(0) == "help" {
		a.usage(stdout)
		if fs.NArg() == 0 {
			return ExitBadInput
		}
		return ExitOK
	}
	cmd, ok := commands[fs.Arg(0)]
	if !ok {
		return a.fail(usagef("unknown command %q", fs.Arg(0)))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return a.fail(cmd.run(ctx, a, fs.Args()[1:]))
}

// fail prints err and returns its exit code.
func (a *app) fail(err error) int {
	var ue *usageError
	var ie *inputError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		a.usage(a.stdout)
		return ExitOK
	case errors.As(err, &ue), announce.IsInput(err), etcdflag.IsInput(err):
		fmt.Fprintf(a.stderr, "ratchetctl: %v\n(see ratchetctl help)\n", err)
		return ExitBadInput
	case errors.As(err, &ie):
		fmt.Fprintf(a.stderr, "ratchetctl: %v\n", err)
		return ExitBadInput
	}
	fmt.Fprintf(a.stderr, "ratchetctl: %v\n", err)
	return ExitFailure
}

// flagSet makes a flag set with the etcd flags and -n.
func (a *app) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.etcd.Register(fs)
	fs.StringVar(&a.namespace, "n", a.namespace, "namespace (default: all; populate, delete: default)")
	fs.StringVar(&a.namespace, "namespace", a.namespace, "same as -n")
	return fs
}

// parse parses a sub-command's flags, which may come before, between and
// after its arguments; it returns the arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// connect opens the store the flags, netconf or environment name, and
// checks that etcd answers.
func (a *app) connect(ctx context.Context) (store.Store, store.Keys, error) {
	cfg, err := a.etcd.Config(a.getenv)
	if err != nil {
		return nil, store.Keys{}, err
	}
	a.cfg = cfg
	kv, err := announce.Connect(cfg)
	if err != nil {
		return nil, store.Keys{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := kv.Ping(pctx); err != nil {
		kv.Close()
		return nil, store.Keys{}, fmt.Errorf("etcd: %w", err)
	}
	return kv, store.Keys{Prefix: cfg.Prefix}, nil
}

// usage writes the help.
func (a *app) usage(w io.Writer) {
	fmt.Fprint(w, "ratchetctl inspects, populates, changes and cleans ratchet's etcd state.\n\nUsage:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  ratchetctl [etcd flags] %s\n", commands[n].synopsis)
	}
	fmt.Fprint(w, helpText)
	fs := (&app{}).flagSet("ratchetctl")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

const helpText = `
Commands:
  status    pods (container, host, age, links) and links (ends, state
            pending/wired/failed, admin up/down, hosts, VNI, age, reason,
            each end's impairment and how its host applied it, e.g.
            "a: loss 30% [bpf]; b: delay 50ms [not applied: …]")
  topology  a Graphviz graph: pods grouped by host, links coloured by state
            (wired green, pending orange, failed red, announced gray),
            labelled with their impairment (per direction when the ends
            differ), dashed and labelled "admin down" when set down;
            render it with: ratchetctl topology | dot -Tsvg > links.svg
  populate  write example announced records: "primary" (primary-pod, in1
            192.168.2.100 -> pair-pod in2 192.168.2.101) and "pair" (its
            peer), as the first ratchet's etcd_populator.sh and
            pair_etcd_populator.sh; --container ID is kept as
            ratchet.target_container; or the pods of a topology file (the
            format of announcer --help)
  delete    remove a pod's records: announced record, pod record;
            its links go back to pending, or are deleted with their
            VNI when the peer has no record either (records only: no
            interface is touched); --all --yes removes everything under
            the prefix (delete_etcd.sh)
  gc        remove the records of this host's pods (host.name: --host, the
            netconf's, else the hostname) whose netns is gone, as delete
            does but keeping announced records; --dry-run only prints
  agents    the node agents (ratchetd) that announce themselves: host,
            underlay address, version, uptime, pods, links, pending links
  link      change a link's record; the agents of both hosts apply it.
            NS/LINK is the link ID as status prints it
            (default/a.in1--b.in2; without NS/, -n or "default").
            set: impair the egress of both ends, or with --end a|b of one
            (a→b is a's egress). The flags given change only their fields
            of each end's current impairment, the others are kept; an
            empty or zero value (--loss 0, --delay "") removes a field.
            Units: --delay/--jitter 20ms, 1.5ms, 250us; --loss, --corrupt,
            --duplicate, --reorder 0.5% (0% to 100%); --rate 100mbit,
            512kbit (bit, kbit, mbit, gbit; bps, kbps, … are bytes/s);
            --jitter and --reorder need a delay. Set or cleared values are
            kept: the pods' declarations no longer change them.
            clear: remove the impairment of both ends (or --end a|b).
            down: both ends lose carrier; up: they regain it.

Exit codes: 0 done, 1 etcd unreachable or failing, 2 bad command line
(or an unknown link; nothing is written).

Flags (every command; etcd flags also from ETCD_* variables):
`
