package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// runAgents lists the node agents that announce themselves.
func runAgents(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("agents")
	output := fs.String("o", "table", "output format: table or json")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("agents", pos); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return usagef("agents: -o %q: want table or json", *output)
	}
	kv, k, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer kv.Close()
	entries, _, err := store.ListJSON[store.AgentRecord](ctx, kv, k.Agents())
	if err != nil {
		return fmt.Errorf("list agents: %w", err)
	}
	agents := make([]store.AgentRecord, 0, len(entries))
	for _, e := range entries {
		agents = append(agents, e.Value)
	}
	if *output == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"agents": agents})
	}
	return writeAgents(a.stdout, agents, time.Now())
}

// writeAgents prints one line per agent: host, address, version, uptime,
// pods, links.
func writeAgents(w io.Writer, agents []store.AgentRecord, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tVERSION\tUPTIME\tPODS\tLINKS\tPENDING\tPID")
	for _, r := range agents {
		up := now.Sub(r.Started).Round(time.Second)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", r.Host, r.Address, r.Version, up, r.Pods, r.Links, r.Pending, r.PID)
	}
	return tw.Flush()
}
