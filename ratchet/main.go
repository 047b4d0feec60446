// Command ratchet is a CNI meta-plugin: it gives every pod its cluster
// network through a master delegate and has the node agent (ratchetd) wire
// point-to-point links between ratchet pods. It is thin: delegation runs
// here, pairing in the agent, which it starts on demand.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/command"
	"github.com/ratchet-cni/ratchet/internal/config"
)

func main() {
	p := &command.Plugin{NewPairer: command.NewAgentPairer}
	skel.PluginMainFuncs(p.Funcs(), version.PluginSupports(config.SupportedVersions...), "CNI ratchet plugin")
}
