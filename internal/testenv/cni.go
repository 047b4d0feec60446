package testenv

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// CNI is a real CNI client (libcni) over the reference plugins and ratchet,
// with its own result cache.
type CNI struct {
	// BinDir is the CNI_PATH holding the plugins.
	BinDir string
	// Client is the libcni client.
	Client *libcni.CNIConfig
}

// NewCNI builds the reference plugins, ratchet and its agent ratchetd (the
// plugin starts it from its own directory) and returns a client whose cache
// lives in a temporary directory.
func NewCNI(t testing.TB) *CNI {
	t.Helper()
	bin := BinDir(t, append(append([]string{}, ReferencePlugins...), PkgRatchet, PkgRatchetd, PkgCnitool)...)
	return &CNI{BinDir: bin, Client: libcni.NewCNIConfigWithCacheDir([]string{bin}, t.TempDir(), nil)}
}

// Conf parses a single-plugin netconf for the client.
func (c *CNI) Conf(t testing.TB, netconf []byte) *libcni.NetworkConfig {
	t.Helper()
	conf, err := libcni.ConfFromBytes(netconf)
	if err != nil {
		t.Fatalf("parse netconf: %v\n%s", err, netconf)
	}
	return conf
}

// List wraps a single netconf in a network list (for STATUS and GC).
func (c *CNI) List(t testing.TB, netconf []byte) *libcni.NetworkConfigList {
	t.Helper()
	list, err := libcni.ConfListFromConf(c.Conf(t, netconf))
	if err != nil {
		t.Fatalf("netconf to list: %v", err)
	}
	return list
}

// Runtime returns the runtime config of one attachment.
func Runtime(containerID, netnsPath, ifName string, args ...[2]string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: containerID, NetNS: netnsPath, IfName: ifName, Args: args}
}

// Add runs ADD through the client.
func (c *CNI) Add(ctx context.Context, conf *libcni.NetworkConfig, rt *libcni.RuntimeConf) (types.Result, error) {
	return c.Client.AddNetwork(ctx, conf, rt)
}

// Del runs DEL through the client.
func (c *CNI) Del(ctx context.Context, conf *libcni.NetworkConfig, rt *libcni.RuntimeConf) error {
	return c.Client.DelNetwork(ctx, conf, rt)
}

// Check runs CHECK through the client.
func (c *CNI) Check(ctx context.Context, conf *libcni.NetworkConfig, rt *libcni.RuntimeConf) error {
	return c.Client.CheckNetwork(ctx, conf, rt)
}

var leaseName = regexp.MustCompile(`^[0-9a-fA-F.:]+$`)

// Leases lists the addresses host-local has reserved under dataDir (every
// network), so that a test can check that nothing is left.
func Leases(t testing.TB, dataDir string) []string {
	t.Helper()
	var leases []string
	err := filepath.WalkDir(dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() && leaseName.MatchString(d.Name()) {
			leases = append(leases, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list leases in %s: %v", dataDir, err)
	}
	return leases
}
