package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// dockerless makes the netconf of a node without Docker or etcd: no
// "metadata" (the default list), docker.host at a socket path where there
// is nothing, and the default etcd endpoint, which nothing serves in the
// simulated host's netns. The agent the plugin starts on demand gets a
// socket beside it (never the machine's /run/ratchet).
func dockerless(socket string) func(map[string]any) {
	return func(conf map[string]any) {
		delete(conf, "metadata")
		conf["docker"] = map[string]any{"host": "unix://" + socket}
		conf["agent"] = map[string]any{"socket": filepath.Join(filepath.Dir(socket), "agent", "ratchetd.sock")}
	}
}

// On a node without Docker (a containerd node), a plain pod works at every
// supported version with a netconf that omits "metadata": every default
// source that cannot apply is skipped.
func TestPlainPodOnADockerlessNodeWorksAtEveryVersion(t *testing.T) {
	for _, v := range config.SupportedVersions {
		t.Run(v, func(t *testing.T) {
			f := newFixture(t)
			pod := testenv.NewNS(t)
			socket := filepath.Join(t.TempDir(), "no-docker.sock")
			conf := f.cni.Conf(t, f.netconf(v, dockerless(socket)))
			rt := testenv.Runtime(testenv.UniqueName("c"), pod.Path(), "eth0")
			res, err := f.add(conf, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			assertResultVersion(t, res, v, "10.77.0.")
			if atLeast(v, "0.4.0") {
				if err := f.check(conf, rt); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if err := f.del(conf, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			f.assertClean(pod)
		})
	}
}

// A Docker socket that is there but does not answer is not "no Docker":
// the pod might be a ratchet pod, so ADD fails with code 11 (try again
// later) and rolls its delegates back.
func TestDeadDockerSocketIsTryAgainLater(t *testing.T) {
	f := newFixture(t)
	pod := testenv.NewNS(t)
	socket := filepath.Join(t.TempDir(), "dead.sock")
	if err := os.WriteFile(socket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := f.cni.Conf(t, f.netconf("1.0.0", dockerless(socket)))
	rt := testenv.Runtime(testenv.UniqueName("c"), pod.Path(), "eth0")
	_, err := f.add(conf, rt)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater {
		t.Fatalf("ADD = %v, want code 11", err)
	}
	f.assertClean(pod)
}
