package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// runPlugin runs the ratchet binary the way a runtime does, in the fixture's
// host netns, and returns stdout, stderr and the exit status.
func (f *fixture) runPlugin(command string, stdin []byte, env ...string) (stdout, stderr string, code int) {
	f.t.Helper()
	var out, errb bytes.Buffer
	_ = f.inHost(func() error {
		cmd := exec.Command(filepath.Join(f.cni.BinDir, "ratchet"))
		cmd.Stdin = bytes.NewReader(stdin)
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Env = append([]string{"CNI_COMMAND=" + command, "CNI_PATH=" + f.cni.BinDir}, env...)
		err := cmd.Run()
		code = cmd.ProcessState.ExitCode()
		return err
	})
	return out.String(), errb.String(), code
}

func TestBadNetconfIsACNIErrorNamingTheField(t *testing.T) {
	f := newFixture(t)
	pod := testenv.NewNS(t)
	cases := []struct {
		name  string
		conf  []byte
		code  uint
		field string
	}{
		{"missing delegates", f.netconf("1.0.0", func(c map[string]any) { delete(c, "delegates") }), 7, "delegates"},
		{"two masters", f.netconf("1.0.0", func(c map[string]any) {
			c["delegates"].([]any)[1].(map[string]any)["masterplugin"] = true
		}), 7, "delegates[1].masterplugin"},
		{"bad etcd.api", f.netconf("1.0.0", func(c map[string]any) { c["etcd"] = map[string]any{"api": "v4"} }), 7, "etcd.api"},
		{"bad pairTimeout", f.netconf("1.0.0", func(c map[string]any) { c["pairTimeout"] = "soon" }), 7, "pairTimeout"},
		{"unknown cniVersion", f.netconf("9.9.9", nil), 1, "9.9.9"},
		{"malformed JSON", []byte(`{"cniVersion":"1.0.0","name":"x","type":"ratchet","delegates":[`), 6, "unexpected end of JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cid := testenv.UniqueName("c")
			stdout, _, code := f.runPlugin("ADD", tc.conf,
				"CNI_CONTAINERID="+cid, "CNI_NETNS="+pod.Path(), "CNI_IFNAME=eth0")
			if code == 0 {
				t.Fatalf("exit status 0 for bad netconf; stdout: %s", stdout)
			}
			var e types.Error
			if err := json.Unmarshal([]byte(stdout), &e); err != nil {
				t.Fatalf("stdout is not a CNI error: %v: %q", err, stdout)
			}
			if e.Code != tc.code || !strings.Contains(e.Msg+" "+e.Details, tc.field) {
				t.Errorf("error %+v, want code %d naming %q", e, tc.code, tc.field)
			}
			f.assertClean(pod)
		})
	}
}

func TestStdoutCarriesOnlyTheResult(t *testing.T) {
	f := newFixture(t)
	pod := testenv.NewNS(t)
	cid := testenv.UniqueName("c")
	conf := f.netconf("1.0.0", nil)
	env := []string{"CNI_CONTAINERID=" + cid, "CNI_NETNS=" + pod.Path(), "CNI_IFNAME=eth0"}
	stdout, stderr, code := f.runPlugin("ADD", conf, env...)
	t.Cleanup(func() { f.runPlugin("DEL", conf, env...) })
	if code != 0 {
		t.Fatalf("ADD exit %d: %s %s", code, stdout, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("stdout is not a single JSON result: %v: %q", err, stdout)
	}
	if stderr != "" {
		t.Errorf("stderr not empty: %q", stderr)
	}
	if _, _, code := f.runPlugin("DEL", conf, env...); code != 0 {
		t.Fatalf("DEL exit %d", code)
	}
	f.assertClean(pod)
}

func TestStatusReportsDelegates(t *testing.T) {
	f := newFixture(t)
	list := f.cni.List(t, f.netconf("1.1.0", nil))
	err := f.inHost(func() error { return f.cni.Client.GetStatusNetworkList(context.Background(), list) })
	if err != nil {
		t.Fatalf("STATUS: %v", err)
	}
}

func TestGCReleasesAttachmentsNotInTheValidList(t *testing.T) {
	f := newFixture(t)
	netconf := f.netconf("1.1.0", nil)
	conf := f.cni.Conf(t, netconf)
	keep, drop := testenv.NewNS(t), testenv.NewNS(t)
	rtKeep := testenv.Runtime(testenv.UniqueName("keep"), keep.Path(), "eth0")
	rtDrop := testenv.Runtime(testenv.UniqueName("drop"), drop.Path(), "eth0")
	for _, rt := range []*libcni.RuntimeConf{rtKeep, rtDrop} {
		if _, err := f.add(conf, rt); err != nil {
			t.Fatalf("ADD %s: %v", rt.ContainerID, err)
		}
	}
	list := f.cni.List(t, netconf)
	args := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: rtKeep.ContainerID, IfName: "eth0"}}}
	if err := f.inHost(func() error { return f.cni.Client.GCNetworkList(context.Background(), list, args) }); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if l := testenv.Leases(t, f.dataDir); len(l) != 2 {
		t.Errorf("after GC want the kept pod's 2 leases, have %v", l)
	}
	if c := f.cacheFiles(); len(c) != 1 || !strings.HasPrefix(c[0], rtKeep.ContainerID) {
		t.Errorf("after GC want only the kept cache, have %v", c)
	}
	if err := f.del(conf, rtKeep); err != nil {
		t.Fatal(err)
	}
	f.assertClean(keep)
}
