package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestAddWiresMasterAndSecondDelegateAtEveryVersion(t *testing.T) {
	for _, v := range config.SupportedVersions {
		t.Run(v, func(t *testing.T) {
			f := newFixture(t)
			pod, conf, rt := f.attach(v, nil)

			res, err := f.add(conf, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			assertResultVersion(t, res, v, "10.77.0.")
			addrs := pod.MustExec(t, "ip", "-o", "-4", "addr", "show")
			for _, want := range []string{"eth0", "10.77.0.", "net1", "10.78.0."} {
				if !strings.Contains(addrs, want) {
					t.Errorf("pod addresses lack %q:\n%s", want, addrs)
				}
			}
			if atLeast(v, "0.4.0") {
				if err := f.check(conf, rt); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if err := f.del(conf, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			f.assertClean(pod)
			if err := f.del(conf, rt); err != nil {
				t.Fatalf("second DEL: %v", err)
			}
		})
	}
}

// assertResultVersion re-parses the printed result at its version and
// checks the master's address.
func assertResultVersion(t *testing.T, res types.Result, v, ipPrefix string) {
	t.Helper()
	if res.Version() != v {
		t.Fatalf("result version %s, want %s", res.Version(), v)
	}
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := version.NewResult(v, raw)
	if err != nil {
		t.Fatalf("result does not parse at %s: %v\n%s", v, err, raw)
	}
	var ips []string
	switch r := parsed.(type) {
	case *types100.Result:
		for _, ip := range r.IPs {
			ips = append(ips, ip.Address.String())
		}
	case *types040.Result:
		for _, ip := range r.IPs {
			ips = append(ips, ip.Address.String())
		}
	}
	if len(ips) != 1 || !strings.HasPrefix(ips[0], ipPrefix) {
		t.Fatalf("result IPs %v, want one master address in %s*", ips, ipPrefix)
	}
}

func atLeast(v, min string) bool {
	ok, err := version.GreaterThanOrEqualTo(v, min)
	return err == nil && ok
}

func TestDelAfterNetnsDeletedSucceeds(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.mustAdd()
	if out, err := pod.Exec("true"); err != nil {
		t.Fatal(out, err)
	}
	deleteNS(t, pod)
	if err := f.del(conf, rt); err != nil {
		t.Fatalf("DEL after netns deletion: %v", err)
	}
	f.assertClean(nil)
}

func TestDelWithCorruptCacheReleasesDelegates(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.mustAdd()
	files := f.cacheFiles()
	if len(files) != 1 {
		t.Fatalf("want one cache file, have %v", files)
	}
	if err := os.WriteFile(filepath.Join(f.cniDir, files[0]), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.del(conf, rt); err != nil {
		t.Fatalf("DEL with corrupt cache: %v", err)
	}
	f.assertClean(pod)
}

func TestCacheIsPrivateAndNamesDelegates(t *testing.T) {
	f := newFixture(t)
	_, conf, rt := f.mustAdd()
	t.Cleanup(func() { _ = f.del(conf, rt) })
	path := filepath.Join(f.cniDir, rt.ContainerID+"-eth0.json")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{`"bridge"`, `"ptp"`, `"ifname":"net1"`, `"results"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("cache lacks %s: %s", want, data)
		}
	}
}

func TestSecondDelegateFailureRollsBackEverything(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.attach("1.0.0", func(c map[string]any) {
		d := c["delegates"].([]any)[1].(map[string]any)
		d["ipam"].(map[string]any)["subnet"] = "10.78.0.0/33"
	})
	_, err := f.add(conf, rt)
	if err == nil {
		t.Fatal("ADD with a broken second delegate succeeded")
	}
	if !strings.Contains(err.Error(), "delegate 1 (ptp on net1)") {
		t.Errorf("error does not name the delegate: %v", err)
	}
	f.assertClean(pod)
}

func TestMissingDelegateBinaryFailsCleanly(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.attach("1.0.0", func(c map[string]any) {
		c["delegates"].([]any)[1].(map[string]any)["type"] = "no-such-plugin"
	})
	_, err := f.add(conf, rt)
	if err == nil || !strings.Contains(err.Error(), "no-such-plugin") {
		t.Fatalf("want an error naming no-such-plugin, got %v", err)
	}
	f.assertClean(pod)
}

func deleteNS(t *testing.T, n *testenv.NS) {
	t.Helper()
	if out, err := runCmd("ip", "netns", "del", n.Name); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
}

func TestDelegateAnsweringAnotherVersionIsConverted(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.attach("1.0.0", func(c map[string]any) {
		c["delegates"].([]any)[0].(map[string]any)["cniVersion"] = "0.3.1"
	})
	res, err := f.add(conf, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	assertResultVersion(t, res, "1.0.0", "10.77.0.")
	if err := f.check(conf, rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := f.del(conf, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	f.assertClean(pod)
}
