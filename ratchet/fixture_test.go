package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// fixture is a simulated host (its own netns, so the bridge the master
// delegate makes never touches the machine's netns) with a CNI client,
// and temp dirs for ratchet's cache, host-local's leases and the log.
type fixture struct {
	t       *testing.T
	host    *testenv.NS
	cni     *testenv.CNI
	cniDir  string
	dataDir string
	logFile string
	bridge  string
	network string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	return &fixture{
		t:       t,
		host:    testenv.NewNS(t),
		cni:     testenv.NewCNI(t),
		cniDir:  filepath.Join(dir, "cni"),
		dataDir: filepath.Join(dir, "ipam"),
		logFile: filepath.Join(dir, "ratchet.log"),
		bridge:  testenv.UniqueName("rb"),
		network: testenv.UniqueName("rnet-"),
	}
}

// attach makes a pod netns, the netconf f.netconf(version, mutate) and the
// runtime config of the pod's eth0 under a unique container ID.
func (f *fixture) attach(version string, mutate func(map[string]any)) (*testenv.NS, *libcni.NetworkConfig, *libcni.RuntimeConf) {
	f.t.Helper()
	pod := testenv.NewNS(f.t)
	return pod, f.cni.Conf(f.t, f.netconf(version, mutate)), testenv.Runtime(testenv.UniqueName("c"), pod.Path(), "eth0")
}

// mustAdd attaches a pod with the default netconf and ADDs it, failing the
// test on an error.
func (f *fixture) mustAdd() (*testenv.NS, *libcni.NetworkConfig, *libcni.RuntimeConf) {
	f.t.Helper()
	pod, conf, rt := f.attach("1.0.0", nil)
	if _, err := f.add(conf, rt); err != nil {
		f.t.Fatalf("ADD: %v", err)
	}
	return pod, conf, rt
}

// netconf returns a ratchet netconf with bridge + host-local as master and
// ptp + host-local as a second delegate (unless mutate changes it).
func (f *fixture) netconf(version string, mutate func(map[string]any)) []byte {
	conf := map[string]any{
		"cniVersion": version,
		"name":       f.network,
		"type":       "ratchet",
		"delegates": []any{
			map[string]any{
				"type": "bridge", "masterplugin": true, "bridge": f.bridge, "isGateway": true,
				"ipam": map[string]any{"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": f.dataDir},
			},
			map[string]any{
				"type": "ptp",
				"ipam": map[string]any{"type": "host-local", "subnet": "10.78.0.0/24", "dataDir": f.dataDir},
			},
		},
		"metadata": []string{},
		"cniDir":   f.cniDir,
		"logFile":  f.logFile,
		"logLevel": "debug",
	}
	if mutate != nil {
		mutate(conf)
	}
	b, err := json.Marshal(conf)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// inHost runs fn with the calling thread in the simulated host's netns, so
// the plugins the client starts run there too.
func (f *fixture) inHost(fn func() error) error {
	return f.host.Do(func(ns.NetNS) error { return fn() })
}

func (f *fixture) add(conf *libcni.NetworkConfig, rt *libcni.RuntimeConf) (types.Result, error) {
	var res types.Result
	err := f.inHost(func() error {
		var err error
		res, err = f.cni.Add(context.Background(), conf, rt)
		return err
	})
	return res, err
}

func (f *fixture) del(conf *libcni.NetworkConfig, rt *libcni.RuntimeConf) error {
	return f.inHost(func() error { return f.cni.Del(context.Background(), conf, rt) })
}

func (f *fixture) check(conf *libcni.NetworkConfig, rt *libcni.RuntimeConf) error {
	return f.inHost(func() error { return f.cni.Check(context.Background(), conf, rt) })
}

// cacheFiles lists ratchet's cache dir.
func (f *fixture) cacheFiles() []string {
	entries, err := os.ReadDir(f.cniDir)
	if err != nil && !os.IsNotExist(err) {
		f.t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// assertClean fails the test if leases, cache files or container links remain.
func (f *fixture) assertClean(pod *testenv.NS) {
	f.t.Helper()
	if l := testenv.Leases(f.t, f.dataDir); len(l) > 0 {
		f.t.Errorf("host-local leases left: %v", l)
	}
	if c := f.cacheFiles(); len(c) > 0 {
		f.t.Errorf("cache files left: %v", c)
	}
	if pod != nil {
		if links := pod.Links(f.t); len(links) > 0 {
			f.t.Errorf("links left in pod netns: %v", links)
		}
	}
}
