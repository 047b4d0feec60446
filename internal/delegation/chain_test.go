package delegation_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/delegation"
)

// chainNetconf has a bridge + portmap chain as master, ptp as the second
// delegate, and runtimeConfig for two capabilities: portmap declares one.
const chainNetconf = `{"cniVersion":"1.0.0","name":"testnet",
	"capabilities":{"portMappings":true,"bandwidth":true},
	"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1}},
	"delegates":[
		{"masterplugin":true,"plugins":[
			{"type":"bridge","bridge":"cni0"},
			{"type":"portmap","capabilities":{"portMappings":true}}]},
		{"type":"ptp"}]}`

// chainIPs are the addresses the fake's plugins answer ADD with; portmap's
// differs from bridge's so that the chain's Result shows whose it is.
var chainIPs = map[string]string{"bridge": "10.0.0.2/24", "portmap": "10.0.0.3/24", "ptp": "10.0.1.2/24"}

// chainArgs is a CNI_ARGS string libcni could not rebuild from key/value
// pairs: the runner must pass it on verbatim.
const chainArgs = "K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns;FLAG"

func loadDelegates(t *testing.T, netconf, ifName string) []config.Delegate {
	t.Helper()
	conf, err := config.Load([]byte(netconf))
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return conf.PrepDelegates(ifName)
}

func newChainRunner(t *testing.T, ex *fakeExec, version string) *delegation.Runner {
	for typ, ip := range chainIPs {
		if _, ok := ex.results[typ]; !ok {
			ex.results[typ] = result(version, ip)
		}
	}
	return &delegation.Runner{Exec: ex, Path: "/fake/bin", CacheDir: filepath.Join(t.TempDir(), "cache")}
}

func chainAttachment(id string) delegation.Attachment {
	a := attachment(id)
	a.Args = chainArgs
	return a
}

// libcniCache is the file where libcni keeps a chain's Result.
func libcniCache(r *delegation.Runner, name, containerID, ifName string) string {
	return filepath.Join(r.CacheDir, "chains", "results", name+"-"+containerID+"-"+ifName)
}

// addChain runs a successful ADD of chainNetconf and forgets its calls.
func addChain(t *testing.T, r *delegation.Runner, ex *fakeExec, id string) []config.Delegate {
	t.Helper()
	ds := loadDelegates(t, chainNetconf, "eth0")
	if _, err := r.Add(context.Background(), chainAttachment(id), "1.0.0", ds); err != nil {
		t.Fatalf("Add: %v", err)
	}
	ex.taken()
	return ds
}

func confString(c execCall, key string) string {
	var s string
	_ = json.Unmarshal(c.Conf[key], &s)
	return s
}

func TestChainAddPassesEachPluginThePreviousResult(t *testing.T) {
	ex := newFakeExec()
	r := newChainRunner(t, ex, "1.0.0")
	ds := loadDelegates(t, chainNetconf, "eth0")
	res, err := r.Add(context.Background(), chainAttachment("c1"), "1.0.0", ds)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "ADD bridge eth0, ADD portmap eth0, ADD ptp net1"; got != want {
		t.Fatalf("calls = %s, want %s", got, want)
	}
	bridge, portmap := calls[0], calls[1]
	if ip := bridge.prevIP(t); ip != "" {
		t.Errorf("first plugin of the chain got a prevResult %s", ip)
	}
	if ip := portmap.prevIP(t); ip != chainIPs["bridge"] {
		t.Errorf("portmap's prevResult address %q, want bridge's %s", ip, chainIPs["bridge"])
	}
	for _, c := range calls {
		if c.Args != chainArgs {
			t.Errorf("%s: CNI_ARGS %q, want %q verbatim", c, c.Args, chainArgs)
		}
		if confString(c, "name") != "testnet" || confString(c, "cniVersion") != "1.0.0" {
			t.Errorf("%s: name %s cniVersion %s, want the inherited testnet 1.0.0", c, c.Conf["name"], c.Conf["cniVersion"])
		}
	}
	if rc := string(portmap.Conf["runtimeConfig"]); rc != `{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]}` {
		t.Errorf("portmap's runtimeConfig %s, want only portMappings", rc)
	}
	for _, c := range []execCall{bridge, calls[2]} {
		if rc, ok := c.Conf["runtimeConfig"]; ok {
			t.Errorf("%s declares no capability but got runtimeConfig %s", c, rc)
		}
	}
	r100, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r100.IPs) != 1 || r100.IPs[0].Address.String() != chainIPs["portmap"] {
		t.Errorf("Add's Result %v, want the chain's last plugin's %s", r100.IPs, chainIPs["portmap"])
	}

	cache, err := r.ReadCache("c1", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if d := cache.Delegates[0]; !d.IsChain() || !slices.Equal(d.Plugins, []string{"bridge", "portmap"}) || d.Type != "bridge+portmap" {
		t.Errorf("cached delegate 0 = %+v, want the bridge+portmap chain", d)
	}
	if !strings.Contains(string(cache.Results[0]), chainIPs["portmap"]) {
		t.Errorf("cached result of the chain %s, want the last plugin's", cache.Results[0])
	}
	if _, err := os.Stat(libcniCache(r, "testnet", "c1", "eth0")); err != nil {
		t.Errorf("libcni cached no result for the chain: %v", err)
	}
}

func TestChainPluginsGetTheChainsVersionAndName(t *testing.T) {
	ex := newFakeExec()
	ex.results["bridge"] = result("0.4.0", chainIPs["bridge"])
	ex.results["portmap"] = result("0.4.0", chainIPs["portmap"])
	r := newChainRunner(t, ex, "1.0.0")
	ds := loadDelegates(t, `{"cniVersion":"1.0.0","name":"testnet","delegates":[
		{"name":"cluster","cniVersion":"0.4.0","plugins":[
			{"type":"bridge","cniVersion":"1.0.0","name":"own"},{"type":"portmap"}]}]}`, "eth0")
	res, err := r.Add(context.Background(), attachment("c1"), "1.0.0", ds)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	for _, c := range ex.taken() {
		if confString(c, "name") != "cluster" || confString(c, "cniVersion") != "0.4.0" {
			t.Errorf("%s: name %s cniVersion %s, want the chain's cluster 0.4.0", c, c.Conf["name"], c.Conf["cniVersion"])
		}
		if c.Plugin == "portmap" && !strings.Contains(string(c.Conf["prevResult"]), `"cniVersion":"0.4.0"`) {
			t.Errorf("portmap's prevResult %s is not at the chain's version", c.Conf["prevResult"])
		}
	}
	if res.Version() != "1.0.0" {
		t.Errorf("Add's Result at %s, want the netconf's 1.0.0", res.Version())
	}
}

// A plugin answering at another version than the chain's: the next plugin
// still gets its prevResult at the chain's version.
func TestChainConvertsResultsToTheChainsVersion(t *testing.T) {
	ex := newFakeExec()
	ex.results["bridge"] = result("0.3.1", chainIPs["bridge"])
	r := newChainRunner(t, ex, "1.0.0")
	ds := loadDelegates(t, chainNetconf, "eth0")
	if _, err := r.Add(context.Background(), chainAttachment("c1"), "1.0.0", ds); err != nil {
		t.Fatalf("Add: %v", err)
	}
	calls := ex.taken()
	if len(calls) < 2 || calls[1].Plugin != "portmap" {
		t.Fatalf("calls = %s", callNames(calls))
	}
	var prev struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(calls[1].Conf["prevResult"], &prev); err != nil || prev.CNIVersion != "1.0.0" {
		t.Errorf("portmap's prevResult %s, want it at the chain's 1.0.0", calls[1].Conf["prevResult"])
	}
	if ip := calls[1].prevIP(t); ip != chainIPs["bridge"] {
		t.Errorf("portmap's prevResult address %q, want bridge's", ip)
	}
}

func TestChainAsSecondDelegateGetsNet1(t *testing.T) {
	ex := newFakeExec()
	r := newChainRunner(t, ex, "1.0.0")
	ds := loadDelegates(t, `{"cniVersion":"1.0.0","name":"testnet","delegates":[
		{"type":"bridge"},{"plugins":[{"type":"ptp"},{"type":"portmap"}]}]}`, "eth0")
	res, err := r.Add(context.Background(), attachment("c1"), "1.0.0", ds)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if got, want := callNames(ex.taken()), "ADD bridge eth0, ADD ptp net1, ADD portmap net1"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	if r100, _ := types100.NewResultFromResult(res); len(r100.IPs) != 1 || r100.IPs[0].Address.String() != chainIPs["bridge"] {
		t.Errorf("Add's Result %v, want the master bridge's", res)
	}
	if err := r.Del(context.Background(), attachment("c1"), ds); err != nil {
		t.Fatalf("Del: %v", err)
	}
	if got, want := callNames(ex.taken()), "DEL portmap net1, DEL ptp net1, DEL bridge eth0"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
}

func TestChainDelRunsReverseWithTheChainsResult(t *testing.T) {
	ex := newFakeExec()
	r := newChainRunner(t, ex, "1.0.0")
	addChain(t, r, ex, "c1")
	// The current config no longer has the chain: DEL runs what ADD ran.
	other := loadDelegates(t, `{"cniVersion":"1.0.0","name":"testnet","delegates":[{"type":"macvlan"}]}`, "eth0")
	if err := r.Del(context.Background(), chainAttachment("c1"), other); err != nil {
		t.Fatalf("Del: %v", err)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "DEL ptp net1, DEL portmap eth0, DEL bridge eth0"; got != want {
		t.Fatalf("calls = %s, want %s", got, want)
	}
	for _, c := range calls[1:] {
		if ip := c.prevIP(t); ip != chainIPs["portmap"] {
			t.Errorf("%s: prevResult address %q, want the chain's Result %s", c, ip, chainIPs["portmap"])
		}
		if c.Args != chainArgs {
			t.Errorf("%s: CNI_ARGS %q, want %q", c, c.Args, chainArgs)
		}
	}
	if !strings.Contains(string(calls[1].Conf["runtimeConfig"]), `"hostPort":8080`) {
		t.Errorf("portmap's DEL lacks the runtimeConfig of its ADD: %s", calls[1].Conf["runtimeConfig"])
	}
	wantNoFile(t, cachePath(r, "c1", "eth0"))
	wantNoFile(t, libcniCache(r, "testnet", "c1", "eth0"))
}

func TestChainDelStopsAtTheFailingPluginAndKeepsTheCaches(t *testing.T) {
	ex := newFakeExec()
	r := newChainRunner(t, ex, "1.0.0")
	ds := addChain(t, r, ex, "c1")
	stuck := types.NewError(types.ErrIOFailure, "iptables locked", "")
	ex.fail["DEL portmap"] = stuck
	err := r.Del(context.Background(), chainAttachment("c1"), ds)
	if got, want := callNames(ex.taken()), "DEL ptp net1, DEL portmap eth0"; got != want {
		t.Errorf("calls = %s, want %s (the chain's DEL halts at portmap, the spec's rule)", got, want)
	}
	var de *delegation.Error
	if !errors.As(err, &de) || de.Index != 0 || de.Type != "bridge+portmap" || de.Plugin != "portmap" || de.Op != "DEL" {
		t.Fatalf("Del error %v (%+v), want delegate 0's chain failing in portmap", err, de)
	}
	var te *types.Error
	if !errors.As(err, &te) || te != stuck {
		t.Errorf("Del error %v does not wrap portmap's *types.Error", err)
	}
	for _, p := range []string{cachePath(r, "c1", "eth0"), libcniCache(r, "testnet", "c1", "eth0")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("cache %s gone after a failed DEL: %v", p, err)
		}
	}
	clear(ex.fail)
	if err := r.Del(context.Background(), chainAttachment("c1"), ds); err != nil {
		t.Fatalf("retried Del: %v", err)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "DEL ptp net1, DEL portmap eth0, DEL bridge eth0"; got != want {
		t.Errorf("retry calls = %s, want %s", got, want)
	}
	for _, c := range calls[1:] {
		if ip := c.prevIP(t); ip != chainIPs["portmap"] {
			t.Errorf("retry %s: prevResult %q, want the chain's Result", c, ip)
		}
	}
	wantNoFile(t, cachePath(r, "c1", "eth0"))
}

func TestChainAddFailureDeletesTheWholeChainAndEarlierDelegates(t *testing.T) {
	ex := newFakeExec()
	cause := types.NewError(types.ErrInternal, "unknown protocol", "")
	ex.fail["ADD portmap"] = cause
	r := newChainRunner(t, ex, "1.0.0")
	ds := loadDelegates(t, `{"cniVersion":"1.0.0","name":"testnet","delegates":[
		{"type":"ptp"},{"masterplugin":true,"plugins":[{"type":"bridge"},{"type":"portmap"}]},{"type":"macvlan"}]}`, "eth0")
	_, err := r.Add(context.Background(), chainAttachment("c1"), "1.0.0", ds)
	calls := ex.taken()
	want := "ADD ptp net1, ADD bridge eth0, ADD portmap eth0, DEL portmap eth0, DEL bridge eth0, DEL ptp net1"
	if got := callNames(calls); got != want {
		t.Fatalf("calls = %s, want %s", got, want)
	}
	for _, c := range calls[3:5] {
		if ip := c.prevIP(t); ip != "" {
			t.Errorf("%s: prevResult %s, but the chain's ADD never finished", c, ip)
		}
	}
	var de *delegation.Error
	if !errors.As(err, &de) || de.Index != 1 || de.Plugin != "portmap" || de.Op != "ADD" || de.IfName != "eth0" {
		t.Fatalf("Add error %v (%+v), want delegate 1's chain failing in portmap", err, de)
	}
	var te *types.Error
	if !errors.As(err, &te) || te != cause {
		t.Errorf("Add error %v does not wrap portmap's *types.Error", err)
	}
	wantNoFile(t, cachePath(r, "c1", "eth0"))
	wantNoFile(t, libcniCache(r, "testnet", "c1", "eth0"))
}

// A plugin of the chain that is not installed fails the chain's ADD after
// the plugins before it ran, and its DEL too, before the plugins before it
// (the spec: a missing executable is an error, and DEL halts at an error).
// The rollback failure is reported and the cache kept for the runtime's
// DEL, which works once the plugin is there.
func TestChainWithAMissingPluginKeepsTheCacheForDel(t *testing.T) {
	ex := newFakeExec()
	ex.missing["portmap"] = true
	r := newChainRunner(t, ex, "1.0.0")
	ds := loadDelegates(t, chainNetconf, "eth0")
	_, err := r.Add(context.Background(), chainAttachment("c1"), "1.0.0", ds)
	if got, want := callNames(ex.taken()), "ADD bridge eth0"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	var de *delegation.Error
	if !errors.As(err, &de) || de.Plugin != "portmap" || !strings.Contains(err.Error(), "rollback") {
		t.Fatalf("Add error %v, want portmap's ADD failure and a failed rollback", err)
	}
	if _, err := r.ReadCache("c1", "eth0"); err != nil {
		t.Fatalf("cache gone after a failed rollback: %v", err)
	}
	delete(ex.missing, "portmap")
	if err := r.Del(context.Background(), chainAttachment("c1"), ds); err != nil {
		t.Fatalf("Del: %v", err)
	}
	if got, want := callNames(ex.taken()), "DEL ptp net1, DEL portmap eth0, DEL bridge eth0"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	wantNoFile(t, cachePath(r, "c1", "eth0"))
}

// The cache written before the first delegate runs is all DEL needs after
// the plugin died during ADD: the chain with each plugin's runtimeConfig.
func TestChainDelAfterACrashedAddUsesTheCacheWrittenBeforeAdd(t *testing.T) {
	ex := newFakeExec()
	r := newChainRunner(t, ex, "1.0.0")
	ds := loadDelegates(t, chainNetconf, "eth0")
	ex.before = func(c execCall) {
		if c.Command == "ADD" && c.Plugin == "portmap" {
			panic("killed")
		}
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = r.Add(context.Background(), chainAttachment("c1"), "1.0.0", ds)
	}()
	ex.before = nil
	ex.taken()
	other := loadDelegates(t, `{"cniVersion":"1.0.0","name":"testnet","delegates":[{"type":"macvlan"}]}`, "eth0")
	if err := r.Del(context.Background(), chainAttachment("c1"), other); err != nil {
		t.Fatalf("Del: %v", err)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "DEL ptp net1, DEL portmap eth0, DEL bridge eth0"; got != want {
		t.Fatalf("calls = %s, want %s", got, want)
	}
	if !strings.Contains(string(calls[1].Conf["runtimeConfig"]), `"hostPort":8080`) {
		t.Errorf("portmap's DEL lacks its runtimeConfig: %s", calls[1].Conf["runtimeConfig"])
	}
	wantNoFile(t, cachePath(r, "c1", "eth0"))
}

func TestChainCheckGivesEveryPluginTheChainsResult(t *testing.T) {
	ex := newFakeExec()
	r := newChainRunner(t, ex, "1.0.0")
	addChain(t, r, ex, "c1")
	if err := r.Check(context.Background(), chainAttachment("c1"), nil); err != nil {
		t.Fatalf("Check: %v", err)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "CHECK bridge eth0, CHECK portmap eth0, CHECK ptp net1"; got != want {
		t.Fatalf("calls = %s, want %s", got, want)
	}
	for _, c := range calls[:2] {
		if ip := c.prevIP(t); ip != chainIPs["portmap"] {
			t.Errorf("%s: prevResult %q, want the chain's Result %s", c, ip, chainIPs["portmap"])
		}
	}
	bad := types.NewError(types.ErrInternal, "DNAT rule missing", "")
	ex.fail["CHECK portmap"] = bad
	err := r.Check(context.Background(), chainAttachment("c1"), nil)
	var de *delegation.Error
	if !errors.As(err, &de) || de.Plugin != "portmap" || de.Op != "CHECK" {
		t.Errorf("Check error %v, want portmap's CHECK failure", err)
	}
	delete(ex.fail, "CHECK portmap")

	// Without libcni's cached Result, CHECK of the chain has no prevResult.
	if err := os.Remove(libcniCache(r, "testnet", "c1", "eth0")); err != nil {
		t.Fatal(err)
	}
	ex.taken()
	err = r.Check(context.Background(), chainAttachment("c1"), nil)
	if err == nil || !strings.Contains(err.Error(), "no result recorded at ADD") {
		t.Errorf("Check without the chain's Result = %v", err)
	}
	if got, want := callNames(ex.taken()), "CHECK ptp net1"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
}

func TestChainCheckSkippedBefore040AndWithDisableCheck(t *testing.T) {
	for name, chain := range map[string]string{
		"0.3.1":        `{"cniVersion":"0.3.1","plugins":[{"type":"bridge"},{"type":"portmap"}]}`,
		"disableCheck": `{"disableCheck":true,"plugins":[{"type":"bridge"},{"type":"portmap"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			ex := newFakeExec()
			ex.results["bridge"] = result("0.3.1", chainIPs["bridge"])
			ex.results["portmap"] = result("0.3.1", chainIPs["portmap"])
			r := newChainRunner(t, ex, "1.0.0")
			ds := loadDelegates(t, `{"cniVersion":"1.0.0","name":"testnet","delegates":[`+chain+`]}`, "eth0")
			if _, err := r.Add(context.Background(), attachment("c1"), "1.0.0", ds); err != nil {
				t.Fatalf("Add: %v", err)
			}
			ex.taken()
			if err := r.Check(context.Background(), attachment("c1"), nil); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if calls := ex.taken(); len(calls) > 0 {
				t.Errorf("Check ran %s", callNames(calls))
			}
		})
	}
}

func TestChainStatusAndGCRunEveryPluginOf110Chains(t *testing.T) {
	ex := newFakeExec()
	r := newChainRunner(t, ex, "1.1.0")
	ds := loadDelegates(t, `{"cniVersion":"1.1.0","name":"testnet","delegates":[
		{"type":"macvlan"},
		{"plugins":[{"type":"ptp"},{"type":"portmap"}]},
		{"disableGC":true,"plugins":[{"type":"bridge"}]},
		{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}]}`, "eth0")
	if err := r.Status(context.Background(), ds); err != nil {
		t.Fatalf("Status: %v", err)
	}
	if got, want := callNames(ex.taken()), "STATUS macvlan eth0, STATUS ptp , STATUS portmap , STATUS bridge "; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	down := types.NewError(types.ErrPluginNotAvailable, "not ready", "")
	ex.fail["STATUS ptp"] = down
	err := r.Status(context.Background(), ds)
	var de *delegation.Error
	if !errors.As(err, &de) || de.Index != 1 || de.Plugin != "ptp" {
		t.Errorf("Status error %v, want delegate 1's ptp", err)
	}
	if got, want := callNames(ex.taken()), "STATUS macvlan eth0, STATUS ptp , STATUS bridge "; got != want {
		t.Errorf("calls = %s, want %s (a chain's STATUS halts at its first failure)", got, want)
	}
	clear(ex.fail)

	valid := []types.GCAttachment{{ContainerID: "c1", IfName: "eth0"}}
	if _, err := r.GC(context.Background(), valid, ds); err != nil {
		t.Fatalf("GC: %v", err)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "GC macvlan eth0, GC ptp net1, GC portmap net1"; got != want {
		t.Fatalf("calls = %s, want %s", got, want)
	}
	for _, c := range calls[1:] {
		for _, key := range []string{"cni.dev/valid-attachments", "cni.dev/attachments"} {
			var got []types.GCAttachment
			if err := json.Unmarshal(c.Conf[key], &got); err != nil {
				t.Fatalf("%s: %s: %v", c, key, err)
			}
			if want := []types.GCAttachment{{ContainerID: "c1", IfName: "net1"}}; !slices.Equal(got, want) {
				t.Errorf("%s: %s = %v, want %v", c, key, got, want)
			}
		}
		if confString(c, "cniVersion") != "1.1.0" || confString(c, "name") != "testnet" {
			t.Errorf("%s: conf %v lacks the chain's version and name", c, c.Conf)
		}
	}
}

// GC deletes a stale attachment's chain from the cache, like any delegate.
func TestGCDeletesStaleChains(t *testing.T) {
	ex := newFakeExec()
	r := newChainRunner(t, ex, "1.0.0")
	ds := addChain(t, r, ex, "c2")
	removed, err := r.GC(context.Background(), nil, ds)
	if err != nil || !slices.Equal(removed, []string{"c2"}) {
		t.Fatalf("GC = %v, %v; want c2 removed", removed, err)
	}
	if got, want := callNames(ex.taken()), "DEL ptp net1, DEL portmap eth0, DEL bridge eth0"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	wantNoFile(t, libcniCache(r, "testnet", "c2", "eth0"))
}
