package announce

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/ratchet-cni/ratchet/internal/etcdflag"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Exit codes of the announcer.
const (
	ExitOK       = 0
	ExitFailure  = 1 // etcd unreachable or failing
	ExitBadInput = 2 // bad flags, variables, topology or pod metadata; nothing written
)

// Main is the announcer command: args are the arguments after the program
// name, getenv reads the environment. It returns the exit code.
func Main(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, err := ParseArgs(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		Usage(stdout)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "announcer: %v\n(see announcer --help)\n", err)
		return ExitBadInput
	}
	recs, err := opts.Records()
	if err != nil {
		fmt.Fprintf(stderr, "announcer: %v\n", err)
		return ExitBadInput
	}
	if opts.Validate {
		return printRecords(stdout, stderr, recs)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, opts, recs, stdout); err != nil {
		fmt.Fprintf(stderr, "announcer: %v\n", err)
		if IsInput(err) {
			return ExitBadInput
		}
		return ExitFailure
	}
	return ExitOK
}

// run connects to etcd and does the mode's work.
func run(ctx context.Context, opts *Options, recs []Record, stdout io.Writer) error {
	kv, err := Connect(opts.Etcd)
	if err != nil {
		return err
	}
	defer kv.Close()
	k := store.Keys{Prefix: opts.Etcd.Prefix}
	pctx, cancel := context.WithTimeout(ctx, opts.Etcd.Timeout)
	err = kv.Ping(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if opts.Delete {
		changes, err := Delete(ctx, kv, k, recs, opts.Force)
		PrintChanges(stdout, changes)
		return err
	}
	changes, err := Apply(ctx, kv, k, recs)
	if err != nil {
		return err
	}
	PrintChanges(stdout, changes)
	if !opts.Wait {
		return nil
	}
	fmt.Fprintf(stdout, "announced %d pod(s); waiting for SIGTERM or SIGINT\n", len(recs))
	<-ctx.Done()
	if !opts.DeleteOnExit {
		return nil
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*opts.Etcd.Timeout)
	defer cancel()
	changes, err = Delete(dctx, kv, k, recs, false)
	PrintChanges(stdout, changes)
	return err
}

// Connect opens the store. A configuration it cannot use (a missing TLS
// file) is an *InputError; etcd failing to answer is not.
func Connect(cfg store.Config) (store.Store, error) {
	kv, err := store.New(cfg)
	switch {
	case err == nil:
		return kv, nil
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrAuth), errors.Is(err, store.ErrAPINotServed):
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return nil, &InputError{Field: "etcd", Reason: err.Error()}
}

// PrintChanges writes one line per change: action, pod, key.
func PrintChanges(w io.Writer, changes []Change) {
	for _, c := range changes {
		fmt.Fprintf(w, "%-9s %s %s\n", c.Action, c.Pod, c.Key)
	}
}

// printRecords prints the records as a JSON array of {namespace, name,
// labels}.
func printRecords(stdout, stderr io.Writer, recs []Record) int {
	type out struct {
		Namespace string            `json:"namespace"`
		Name      string            `json:"name"`
		Labels    map[string]string `json:"labels"`
	}
	list := make([]out, len(recs))
	for i, r := range recs {
		list[i] = out{r.Namespace, r.Name, r.Labels}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(list); err != nil {
		fmt.Fprintf(stderr, "announcer: %v\n", err)
		return ExitFailure
	}
	return ExitOK
}

// Usage writes the announcer's help.
func Usage(w io.Writer) {
	fmt.Fprint(w, usageText)
	var o Options
	fs := newFlagSet(&o, &etcdflag.Flags{}, map[string]*string{}, map[string]*string{})
	fs.SetOutput(w)
	fs.PrintDefaults()
}

const usageText = `announcer publishes pods' ratchet metadata into etcd, at
<prefix>/announce/<namespace>/<pod>, so that ratchet can pair pods whose
runtime gives it no Docker labels.

Usage:
  announcer [pod flags] [etcd flags] [--wait [--delete-on-exit]]
  announcer --file TOPOLOGY.yaml [--pod-name NAME] [etcd flags] [--wait ...]
  announcer ... --delete [--force]
  announcer ... --validate

One pod comes from the pod flags or their variables (those of the first
ratchet's announcer sidecar: POD_NAME, PRIMARY, LOCAL_IP, ...); many pods
and links from a topology file:

  namespace: default            # optional
  pods:                         # optional: pods with kept keys or own links
    - name: centosa
      public_ip: 1.1.1.1        # also target_pod, target_container
      links: []                 # optional, as ratchet.links
  links:                        # each link once
    - a: {pod: centosa,  ifname: in1, ip: 192.0.2.1/30}   # declares it
      b: {pod: quagga-a, ifname: in1, ip: 192.0.2.2/30}   # expects it
      mtu: 1500                 # optional

The input is validated as the plugin validates pod metadata (and a
topology as a whole) before anything is written; a record that already
holds the same value is not rewritten. Flags win over variables.

Exit codes: 0 done; 1 etcd unreachable or failing (what this run wrote is
undone); 2 bad input (nothing written).

Flags:
`
