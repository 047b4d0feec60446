package ctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ratchet-cni/ratchet/internal/announce"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// noArgs rejects arguments for commands that take none.
func noArgs(name string, pos []string) error {
	if len(pos) > 0 {
		return usagef("%s takes no arguments, got %q", name, pos)
	}
	return nil
}

func runStatus(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("status")
	output := fs.String("o", "table", "output format: table or json")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("status", pos); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return usagef("status: -o %q: want table or json", *output)
	}
	snap, err := a.snapshot(ctx)
	if err != nil {
		return err
	}
	if *output == "json" {
		return writeJSON(a.stdout, snap.status())
	}
	return writeTable(a.stdout, snap.status(), time.Now())
}

func runTopology(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("topology")
	output := fs.String("o", "dot", "output format: dot (Graphviz)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("topology", pos); err != nil {
		return err
	}
	if *output != "dot" {
		return usagef("topology: -o %q: want dot", *output)
	}
	snap, err := a.snapshot(ctx)
	if err != nil {
		return err
	}
	st := snap.status()
	return writeDOT(a.stdout, st, snap.announcedLinks(st.Links))
}

// seedLabels are the first ratchet's example pods (scripts/primary.label,
// scripts/pair.label), which its etcd_populator.sh and
// pair_etcd_populator.sh wrote into etcd.
var seedLabels = map[string]map[string]string{
	"primary": {
		metadata.KeyRatchet: "true", metadata.KeyPodName: "primary-pod", metadata.KeyTargetPod: "primary-pod",
		metadata.KeyTargetContainer: "primary-pod", metadata.KeyPublicIP: "1.1.1.1",
		metadata.KeyLocalIP: "192.168.2.100", metadata.KeyLocalIfName: "in1", metadata.KeyPairName: "pair-pod",
		metadata.KeyPairIP: "192.168.2.101", metadata.KeyPairIfName: "in2", metadata.KeyPrimary: "true",
	},
	"pair": {
		metadata.KeyRatchet: "true", metadata.KeyPodName: "pair-pod", metadata.KeyTargetPod: "pair-pod",
		metadata.KeyTargetContainer: "pair-pod", metadata.KeyPublicIP: "1.1.1.1",
		metadata.KeyLocalIP: "192.168.2.101", metadata.KeyLocalIfName: "in2", metadata.KeyPairName: "primary-pod",
		metadata.KeyPairIP: "192.168.2.100", metadata.KeyPairIfName: "in1", metadata.KeyPrimary: "false",
	},
}

func runPopulate(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("populate")
	container := fs.String("container", "", "container ID, kept in the record as ratchet.target_container")
	file := fs.String("file", "", "announce the pods of this topology file instead")
	podName := fs.String("pod-name", "", "with --file: only this pod")
	master := fs.String("master-ifname", announce.DefaultMasterIfName, "the master delegate's interface, which links may not use")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	recs, err := populateRecords(a, pos, *container, *file, *podName, *master)
	if err != nil {
		return err
	}
	kv, k, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer kv.Close()
	changes, err := announce.Apply(ctx, kv, k, recs)
	if err != nil {
		return err
	}
	announce.PrintChanges(a.stdout, changes)
	return nil
}

// populateRecords validates what populate is asked to write.
func populateRecords(a *app, pos []string, container, file, podName, master string) ([]announce.Record, error) {
	opts := &announce.Options{Labels: map[string]string{}, File: file, Master: master}
	if a.namespace != "" {
		opts.Labels[metadata.KeyNamespace] = a.namespace
	}
	switch {
	case file != "" && (len(pos) > 0 || container != ""):
		return nil, usagef("populate: --file cannot be combined with %q or --container", pos)
	case file != "":
		if podName != "" {
			opts.Labels[metadata.KeyPodName] = podName
		}
	case len(pos) != 1 || seedLabels[pos[0]] == nil:
		return nil, usagef("populate: want primary, pair or --file TOPOLOGY.yaml, got %q", pos)
	default:
		for k, v := range seedLabels[pos[0]] {
			opts.Labels[k] = v
		}
		if container != "" {
			opts.Labels[metadata.KeyTargetContainer] = container
		}
	}
	return opts.Records()
}

func runDelete(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("delete")
	all := fs.Bool("all", false, "remove everything under the prefix")
	yes := fs.Bool("yes", false, "with --all: really")
	dryRun := fs.Bool("dry-run", false, "only print what would be removed")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *all && len(pos) > 0:
		return usagef("delete: --all takes no pod, got %q", pos)
	case !*all && len(pos) != 1:
		return usagef("delete: want one POD or --all, got %q", pos)
	case *all && !*yes && !*dryRun:
		return usagef("delete --all removes every record under the prefix: add --yes")
	}
	kv, k, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer kv.Close()
	r := &remover{kv: kv, k: k, dryRun: *dryRun, out: a.stdout}
	if *all {
		if !*dryRun {
			if err := kv.DeleteDir(ctx, k.Prefix); err != nil {
				return fmt.Errorf("delete %s: %w", k.Prefix, err)
			}
		}
		r.say("delete everything under %s", k.Prefix)
		return nil
	}
	ns := a.namespace
	if ns == "" {
		ns = metadata.DefaultNamespace
	}
	return r.forgetPod(ctx, ns, pos[0], 0, true)
}

func runGC(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("gc")
	host := fs.String("host", "", "this host's name (default: the netconf's host.name, else the hostname)")
	dryRun := fs.Bool("dry-run", false, "only print what would be removed")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("gc", pos); err != nil {
		return err
	}
	kv, k, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer kv.Close()
	name := *host
	if name == "" {
		name = a.etcd.Host
	}
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return usagef("gc: no --host and no hostname: %v", err)
		}
	}
	r := &remover{kv: kv, k: k, dryRun: *dryRun, out: a.stdout}
	n, err := r.gc(ctx, a.namespace, name)
	if n == 0 && err == nil {
		fmt.Fprintf(a.stdout, "nothing to collect on host %s\n", name)
	}
	if errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("etcd: %w", err)
	}
	return err
}

// snapshot reads the pods and links of the selected namespace(s) with a
// connection of its own.
func (a *app) snapshot(ctx context.Context) (*snapshot, error) {
	kv, k, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	return readSnapshot(ctx, kv, k, a.namespace)
}
