// Command ratchet is a CNI meta-plugin: it gives every pod its cluster
// network through a master delegate and wires point-to-point links between
// ratchet pods, coordinating through etcd. Run as `ratchet complete JOB` it
// is the detached completer that finishes a pod's pairing.
package main

import (
	"log/slog"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/command"
	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/pairing"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == pairing.CompleterArg {
		os.Exit(pairing.RunCompleter(os.Args[2]))
	}
	p := &command.Plugin{NewPairer: func(conf *config.NetConf, log *slog.Logger) (command.Pairer, error) {
		if len(conf.Metadata) == 0 {
			return nil, nil // no metadata source: no pod can be a ratchet pod
		}
		return pairing.New(conf, log, pairing.Deps{}), nil
	}}
	skel.PluginMainFuncs(p.Funcs(), version.PluginSupports(config.SupportedVersions...), "CNI ratchet plugin")
}
