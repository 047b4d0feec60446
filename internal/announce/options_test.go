package announce

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// sidecarEnv is the environment of the first ratchet's announcer sidecar.
var sidecarEnv = map[string]string{
	"POD_NAME": "primary-pod", "TARGET_POD": "primary-pod", "TARGET_CONTAINER": "target-container",
	"PUBLIC_IP": "1.1.1.1", "LOCAL_IP": "192.168.2.100", "LOCAL_IFNAME": "in1", "PAIR_NAME": "pair-pod",
	"PAIR_IP": "192.168.2.101", "PAIR_IFNAME": "in2", "PRIMARY": "true",
}

func envFunc(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSidecarEnvironmentMakesThePrimaryRecord(t *testing.T) {
	o, err := ParseArgs(nil, envFunc(sidecarEnv))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := o.Records()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ratchet": "true", "ratchet.pod_name": "primary-pod", "ratchet.namespace": "default", "ratchet.primary": "true",
		"ratchet.local_ip": "192.168.2.100/24", "ratchet.local_ifname": "in1", "ratchet.pair_name": "pair-pod",
		"ratchet.pair_ip": "192.168.2.101/24", "ratchet.pair_ifname": "in2", "ratchet.target_pod": "primary-pod",
		"ratchet.target_container": "target-container", "ratchet.public_ip": "1.1.1.1",
	}
	if len(recs) != 1 || !reflect.DeepEqual(recs[0].Labels, want) {
		t.Fatalf("records %+v\nwant labels %v", recs, want)
	}
	if o.Etcd.API != "v2" || o.Etcd.Prefix != "/ratchet" || o.Master != "eth0" || o.Wait {
		t.Errorf("defaults: %+v", o)
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	args := []string{"--pod-name", "other", "--namespace=lab", "--local-ip", "10.1.1.1/30", "--links",
		`[{"peer":"third","ifname":"x1","peer_ifname":"x2","mtu":1400}]`, "--etcd-api", "v3", "--etcd-prefix", "/lab",
		"--master-ifname", "net0", "--wait", "--delete-on-exit"}
	env := map[string]string{"ETCD_API": "v2", "ETCD_ENDPOINTS": "http://10.0.0.9:2379", "POD_NAMESPACE": "prod"}
	for k, v := range sidecarEnv {
		env[k] = v
	}
	o, err := ParseArgs(args, envFunc(env))
	if err != nil {
		t.Fatal(err)
	}
	l := o.Labels
	if l[metadata.KeyPodName] != "other" || l[metadata.KeyNamespace] != "lab" || l[metadata.KeyLocalIP] != "10.1.1.1/30" ||
		l[metadata.KeyPairName] != "pair-pod" || !strings.Contains(l[metadata.KeyLinks], "third") {
		t.Errorf("labels %v", l)
	}
	if o.Etcd.API != "v3" || o.Etcd.Prefix != "/lab" || o.Etcd.Endpoints[0] != "http://10.0.0.9:2379" ||
		o.Master != "net0" || !o.Wait || !o.DeleteOnExit {
		t.Errorf("options %+v", o)
	}
	if _, err := o.Records(); err != nil {
		t.Error(err)
	}
}

func TestBadInputNamesTheSetting(t *testing.T) {
	topo := testenv.RepoFile(testenv.RouterChainFile)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"nothing", nil, nil, "nothing to announce"},
		{"positional", []string{"pod"}, nil, "unexpected"},
		{"unknown flag", []string{"--colour"}, nil, "colour"},
		{"bad ip", nil, map[string]string{"POD_NAME": "a", "PRIMARY": "true", "LOCAL_IP": "1.2.3", "LOCAL_IFNAME": "x",
			"PAIR_NAME": "b", "PAIR_IFNAME": "y"}, `pod default/a: --local-ip/LOCAL_IP: "1.2.3": not an IP`},
		{"primary", []string{"--pod-name", "a", "--primary", "yes"}, nil, `--primary/PRIMARY: "yes"`},
		{"pair name", []string{"--pod-name", "a", "--local-ifname", "in1"}, nil, "--pair-name/PAIR_NAME: required"},
		{"pod name", nil, map[string]string{"POD_NAME": "A_b"}, `--pod-name/POD_NAME: "A_b": not a DNS label`},
		{"links entry", []string{"--pod-name", "a", "--links", `[{"peer":"b","ifname":"eth0","peer_ifname":"x"}]`}, nil,
			`--links/LINKS[0].ifname: "eth0": clashes with the master`},
		{"netem field", nil, map[string]string{"POD_NAME": "a", "PRIMARY": "true", "LOCAL_IFNAME": "x", "PAIR_NAME": "b",
			"PAIR_IFNAME": "y", "NETEM": `{"loss":"5"}`}, `pod default/a: --netem/NETEM.loss: "5": want a percentage`},
		{"netem unknown key", []string{"--pod-name", "a", "--pair-name", "b", "--netem", `{"los":"5%"}`}, nil, `--netem/NETEM: `},
		{"netem without a link", []string{"--pod-name", "a", "--netem", `{"loss":"5%"}`}, nil, "--pair-name/PAIR_NAME: required with ratchet.netem"},
		{"links netem", []string{"--pod-name", "a", "--links", `[{"peer":"b","ifname":"x","peer_ifname":"y","peer_netem":{"rate":"1"}}]`}, nil,
			`--links/LINKS[0].peer_netem.rate: "1": want a rate`},
		{"master", []string{"--pod-name", "a", "--master-ifname", "in1", "--primary", "true", "--local-ifname", "in1",
			"--pair-name", "b", "--pair-ifname", "x"}, nil, "--local-ifname/LOCAL_IFNAME"},
		{"etcd", []string{"--pod-name", "a", "--etcd-api", "v4"}, nil, "--etcd-api/ETCD_API"},
		{"delete and wait", []string{"--pod-name", "a", "--delete", "--wait"}, nil, "--delete: cannot be combined with --wait"},
		{"delete-on-exit alone", []string{"--pod-name", "a", "--delete-on-exit"}, nil, "--delete-on-exit: only with --wait"},
		{"force alone", []string{"--pod-name", "a", "--force"}, nil, "--force: only with --delete"},
		{"file and pod keys", []string{"--file", topo, "--local-ip", "10.0.0.1"}, nil, "--local-ip/LOCAL_IP"},
		{"file and namespace", []string{"--file", topo}, map[string]string{"POD_NAMESPACE": "lab"}, `differs from the namespace "default"`},
		{"unknown pod", []string{"--file", topo, "--pod-name", "nope"}, nil, `--pod-name/POD_NAME: "nope": unknown pod`},
		{"missing file", []string{"--file", "/nonexistent/t.yaml"}, nil, "--file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseArgs(tt.args, envFunc(tt.env))
			if err == nil {
				_, err = o.Records()
			}
			if err == nil || !IsInput(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want an input error containing %q", err, tt.want)
			}
		})
	}
}

func TestTopologyFileSelectsOnePod(t *testing.T) {
	topo := testenv.RepoFile(testenv.RouterChainFile)
	o, err := ParseArgs([]string{"--pod-name", "quagga-a"}, envFunc(map[string]string{"TOPOLOGY_FILE": topo, "POD_NAMESPACE": "default"}))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := o.Records()
	if err != nil || len(recs) != 1 || recs[0].Name != "quagga-a" {
		t.Fatalf("records %v, %v", recs, err)
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	if _, err := ParseArgs([]string{"--help"}, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	var out, errOut strings.Builder
	if code := Main([]string{"-h"}, nil, &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, w := range []string{"POD_NAME", "--file", "TOPOLOGY", "links:", "ETCD_ENDPOINTS", "delete-on-exit", "Exit codes"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("help lacks %q", w)
		}
	}
}
