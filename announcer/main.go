// Command announcer publishes pods' ratchet metadata into etcd, so that
// ratchet can pair pods whose runtime gives it no Docker labels. It runs
// once (a Kubernetes Job), stays (--wait, a sidecar) or removes what it
// announced (--delete). See `announcer --help` and internal/announce.
package main

import (
	"os"

	"github.com/ratchet-cni/ratchet/internal/announce"
)

func main() {
	os.Exit(announce.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
