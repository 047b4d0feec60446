package delegation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/delegation"
)

// execCall is one plugin execution as the fake saw it.
type execCall struct {
	Plugin      string // the delegate's type (base name of the plugin path)
	Command     string // CNI_COMMAND
	IfName      string // CNI_IFNAME
	ContainerID string // CNI_CONTAINERID
	Args        string // CNI_ARGS
	Conf        map[string]json.RawMessage
}

func (c execCall) String() string { return c.Command + " " + c.Plugin + " " + c.IfName }

// prevIP is the first address of the prevResult the call was given, "" for none.
func (c execCall) prevIP(t *testing.T) string {
	t.Helper()
	raw, ok := c.Conf["prevResult"]
	if !ok {
		return ""
	}
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.IPs) == 0 {
		t.Fatalf("%s: prevResult %s has no address (err %v)", c, raw, err)
	}
	return r.IPs[0].Address
}

// fakeExec implements invoke.Exec: it records every call and answers ADD
// with a canned Result per delegate type, or fails a given "CMD type".
type fakeExec struct {
	version.PluginDecoder

	mu      sync.Mutex
	calls   []execCall
	results map[string]string // type → ADD Result JSON
	fail    map[string]error  // "ADD bridge" → error
	missing map[string]bool   // types FindInPath does not find
	before  func(execCall)    // runs inside ExecPlugin, before answering
}

func newFakeExec() *fakeExec {
	return &fakeExec{results: map[string]string{}, fail: map[string]error{}, missing: map[string]bool{}}
}

func (f *fakeExec) ExecPlugin(_ context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	c := execCall{Plugin: filepath.Base(path)}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "CNI_COMMAND":
			c.Command = v
		case "CNI_IFNAME":
			c.IfName = v
		case "CNI_CONTAINERID":
			c.ContainerID = v
		case "CNI_ARGS":
			c.Args = v
		}
	}
	if err := json.Unmarshal(stdin, &c.Conf); err != nil {
		return nil, fmt.Errorf("fake: stdin is not a netconf: %w", err)
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	before, err, res := f.before, f.fail[c.Command+" "+c.Plugin], f.results[c.Plugin]
	f.mu.Unlock()
	if before != nil {
		before(c)
	}
	if err != nil {
		return nil, err
	}
	if c.Command != "ADD" {
		return nil, nil
	}
	if res == "" {
		return nil, fmt.Errorf("fake: no result for %s", c.Plugin)
	}
	return []byte(res), nil
}

func (f *fakeExec) FindInPath(plugin string, paths []string) (string, error) {
	if len(paths) == 0 {
		return "", fmt.Errorf("fake: no CNI_PATH for %s", plugin)
	}
	f.mu.Lock()
	missing := f.missing[plugin]
	f.mu.Unlock()
	if missing {
		return "", fmt.Errorf("failed to find plugin %q in path %s", plugin, paths)
	}
	return filepath.Join(paths[0], plugin), nil
}

// taken returns the calls so far and forgets them.
func (f *fakeExec) taken() []execCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// callNames renders calls as "CMD type ifname" for comparison.
func callNames(calls []execCall) string {
	s := make([]string, len(calls))
	for i, c := range calls {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}

// result renders a delegate's Result at version v with one address.
func result(v, ip string) string {
	if v == "0.3.0" || v == "0.3.1" || v == "0.4.0" {
		return fmt.Sprintf(`{"cniVersion":%q,"ips":[{"version":"4","address":%q}]}`, v, ip)
	}
	return fmt.Sprintf(`{"cniVersion":%q,"ips":[{"address":%q}]}`, v, ip)
}

// delegates loads a netconf with the given delegate list and prepares the
// delegates for the runtime's interface ifName.
func delegates(t *testing.T, cniVersion, list, ifName string) []config.Delegate {
	t.Helper()
	conf, err := config.Load([]byte(fmt.Sprintf(`{"cniVersion":%q,"name":"testnet","delegates":%s}`, cniVersion, list)))
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return conf.PrepDelegates(ifName)
}

// threeDelegates is ptp (net1), the master bridge (eth0) and macvlan (net2),
// each answering ADD with its own address.
const threeDelegates = `[{"type":"ptp"},{"type":"bridge","masterplugin":true},{"type":"macvlan"}]`

var threeIPs = map[string]string{"ptp": "10.0.1.2/24", "bridge": "10.0.0.2/24", "macvlan": "10.0.2.2/24"}

func newRunner(t *testing.T, ex *fakeExec) *delegation.Runner {
	for typ, ip := range threeIPs {
		if _, ok := ex.results[typ]; !ok {
			ex.results[typ] = result("1.0.0", ip)
		}
	}
	return &delegation.Runner{Exec: ex, Path: "/fake/bin", CacheDir: filepath.Join(t.TempDir(), "cache")}
}

func cachePath(r *delegation.Runner, containerID, ifName string) string {
	return filepath.Join(r.CacheDir, containerID+"-"+ifName+".json")
}

func attachment(id string) delegation.Attachment {
	return delegation.Attachment{ContainerID: id, NetNS: "/var/run/netns/" + id, IfName: "eth0", Args: "K8S_POD_NAME=p"}
}

// addThree runs a successful ADD of threeDelegates for container id.
func addThree(t *testing.T, r *delegation.Runner, ex *fakeExec, id string) []config.Delegate {
	t.Helper()
	ds := delegates(t, "1.0.0", threeDelegates, "eth0")
	if _, err := r.Add(context.Background(), attachment(id), "1.0.0", ds); err != nil {
		t.Fatalf("Add: %v", err)
	}
	ex.taken()
	return ds
}

func wantNoFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: want no file, stat says %v", path, err)
	}
}

// wantDelegateError checks that err holds a *delegation.Error for delegate
// index (type, ifname, op) that wraps want.
func wantDelegateError(t *testing.T, err error, index int, typ, ifName, op string, want *types.Error) {
	t.Helper()
	var found bool
	for _, e := range flatten(err) {
		var de *delegation.Error
		if !errors.As(e, &de) || de.Index != index {
			continue
		}
		found = true
		if de.Type != typ || de.IfName != ifName || de.Op != op {
			t.Errorf("delegation.Error = %+v, want index %d %s on %s %s", de, index, typ, ifName, op)
		}
		var te *types.Error
		if !errors.As(de, &te) || te != want {
			t.Errorf("delegation.Error %v does not wrap the delegate's *types.Error %v", de, want)
		}
	}
	if !found {
		t.Errorf("error %v: no *delegation.Error for delegate %d", err, index)
	}
}

// flatten splits an errors.Join into its parts.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
