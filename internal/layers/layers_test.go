package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ratchet-cni/ratchet/"

// rules: a package (or binary) and the import path prefixes none of its
// dependencies may have.
var rules = []struct {
	pkg       string
	forbidden []string
	why       string
}{
	{"announcer", []string{"github.com/vishvananda/netlink", "github.com/docker/docker", "github.com/moby/moby", module + "internal/wiring", module + "internal/pairing"},
		"the announcer only writes records: no netlink, wiring or Docker client"},
	{"utils/ratchetctl", []string{"github.com/vishvananda/netlink", "github.com/docker/docker", "github.com/moby/moby", module + "internal/wiring", module + "internal/pairing"},
		"ratchetctl reads and edits records: no netlink, wiring or Docker client"},
	{"internal/store", []string{"github.com/docker/docker", "github.com/moby/moby", "github.com/vishvananda/netlink", module + "internal/dockermeta", module + "internal/wiring"},
		"the store knows etcd, not metadata sources or netlink"},
	{"internal/metadata", []string{"github.com/docker/docker", "github.com/moby/moby", "go.etcd.io/", module + "internal/store"},
		"metadata parses labels; sources with clients live in their own packages"},
	{"internal/wiring", []string{"go.etcd.io/", module + "internal/store", module + "internal/config", module + "internal/metadata"},
		"wiring knows netlink, not CNI config, etcd or metadata"},
	{"internal/config", []string{"go.etcd.io/", "github.com/vishvananda/netlink", "github.com/moby/moby", module + "internal/store"},
		"the netconf is read by every binary: it links no client"},
	{"internal/etcdcfg", []string{module, "go.etcd.io/"},
		"etcd settings are a leaf"},
	{"ratchet", []string{"go.etcd.io/", "google.golang.org/grpc", "github.com/docker/docker", "github.com/moby/moby",
		"k8s.io/client-go", module + "internal/pairing", module + "internal/store", module + "internal/metadata", module + "internal/dockermeta"},
		"the plugin is thin: delegation here, pairing in the agent; no etcd, gRPC, Docker or Kubernetes client"},
	{"internal/agentapi", []string{"go.etcd.io/", "google.golang.org/", "k8s.io/", "github.com/vishvananda/", "github.com/moby/",
		"github.com/docker/", module + "internal/pairing", module + "internal/store", module + "internal/wiring"},
		"the plugin-agent protocol is linked by the plugin: the standard library and small leaves (statefile) only"},
}

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-test=false", module+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestDependenciesPointOneWay(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			for _, d := range deps(t, r.pkg) {
				if d == module+r.pkg {
					continue
				}
				for _, f := range r.forbidden {
					if d == strings.TrimSuffix(f, "/") || strings.HasPrefix(d, f) {
						t.Errorf("%s depends on %s: %s", r.pkg, d, r.why)
					}
				}
			}
		})
	}
}
