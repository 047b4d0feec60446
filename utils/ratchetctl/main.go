// Command ratchetctl inspects, populates and cleans ratchet's etcd state:
// status, topology (Graphviz), agents, populate, link set|clear|down|up
// (impairments and admin state), delete and gc. See
// `ratchetctl help` and internal/ctl.
package main

import (
	"os"

	"github.com/ratchet-cni/ratchet/internal/ctl"
)

func main() {
	os.Exit(ctl.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
