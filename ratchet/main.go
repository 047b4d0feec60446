// Command ratchet is a CNI meta-plugin: it gives every pod its cluster
// network through a master delegate and wires point-to-point links between
// ratchet pods, coordinating through etcd.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/command"
	"github.com/ratchet-cni/ratchet/internal/config"
)

func main() {
	p := &command.Plugin{}
	skel.PluginMainFuncs(p.Funcs(), version.PluginSupports(config.SupportedVersions...), "CNI ratchet plugin")
}
