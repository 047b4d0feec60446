package delegation_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ratchet-cni/ratchet/internal/delegation"
)

func TestAddRunsDelegatesInOrderWithMasterOnRuntimeIfName(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	ds := delegates(t, "1.0.0", threeDelegates, "eth0")
	if _, err := r.Add(context.Background(), attachment("c1"), "1.0.0", ds); err != nil {
		t.Fatalf("Add: %v", err)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "ADD ptp net1, ADD bridge eth0, ADD macvlan net2"; got != want {
		t.Fatalf("calls = %s, want %s", got, want)
	}
	for _, c := range calls {
		if c.ContainerID != "c1" {
			t.Errorf("%s: CNI_CONTAINERID = %q, want c1", c, c.ContainerID)
		}
		if _, ok := c.Conf["prevResult"]; ok {
			t.Errorf("%s: ADD was given a prevResult", c)
		}
		if name := string(c.Conf["name"]); name != `"testnet"` {
			t.Errorf("%s: name = %s, want the inherited \"testnet\"", c, name)
		}
	}
}

func TestAddWritesPrivateCacheBeforeFirstDelegateAndResultsAfter(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	path := cachePath(r, "c1", "eth0")
	checked := false
	ex.before = func(c execCall) {
		if checked {
			return
		}
		checked = true
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("cache missing when %s runs: %v", c, err)
			return
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("cache mode = %v, want 0600", fi.Mode().Perm())
		}
		cache, err := r.ReadCache("c1", "eth0")
		if err != nil {
			t.Errorf("ReadCache before the first delegate: %v", err)
			return
		}
		if len(cache.Delegates) != 3 || len(cache.Results) != 0 {
			t.Errorf("cache before ADD holds %d delegates and %d results, want 3 and 0", len(cache.Delegates), len(cache.Results))
		}
	}
	addThree(t, r, ex, "c1")
	if !checked {
		t.Fatal("no delegate ran")
	}
	cache, err := r.ReadCache("c1", "eth0")
	if err != nil {
		t.Fatalf("ReadCache after ADD: %v", err)
	}
	if cache.NetNS != "/var/run/netns/c1" || cache.Args != "K8S_POD_NAME=p" || cache.CNIVersion != "1.0.0" {
		t.Errorf("cache = %+v, want the attachment's netns, args and cniVersion", cache)
	}
	if len(cache.Results) != 3 {
		t.Fatalf("cache holds %d results, want 3", len(cache.Results))
	}
	for i, typ := range []string{"ptp", "bridge", "macvlan"} {
		var res types100.Result
		if err := json.Unmarshal(cache.Results[i], &res); err != nil || len(res.IPs) != 1 {
			t.Fatalf("cached result %d = %s (err %v)", i, cache.Results[i], err)
		}
		if got := res.IPs[0].Address.String(); got != threeIPs[typ] {
			t.Errorf("cached result %d (%s) address %s, want %s", i, typ, got, threeIPs[typ])
		}
	}
}

func TestAddReturnsMasterResultConvertedToNetconfVersion(t *testing.T) {
	for _, tc := range []struct{ delegate, netconf string }{
		{"0.4.0", "1.0.0"},
		{"1.0.0", "0.4.0"},
		{"0.3.1", "1.1.0"},
		{"1.1.0", "1.1.0"},
	} {
		t.Run(tc.delegate+"-to-"+tc.netconf, func(t *testing.T) {
			ex := newFakeExec()
			ex.results["bridge"] = result(tc.delegate, "10.9.0.5/24")
			ex.results["ptp"] = result("1.0.0", "10.9.1.5/24")
			r := newRunner(t, ex)
			list := `[{"type":"ptp"},{"type":"bridge","masterplugin":true,"cniVersion":"` + tc.delegate + `"}]`
			ds := delegates(t, tc.netconf, list, "eth0")
			res, err := r.Add(context.Background(), attachment("c1"), tc.netconf, ds)
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if res.Version() != tc.netconf {
				t.Errorf("result version %s, want %s", res.Version(), tc.netconf)
			}
			r100, err := types100.NewResultFromResult(res)
			if err != nil {
				t.Fatalf("convert: %v", err)
			}
			if len(r100.IPs) != 1 || r100.IPs[0].Address.String() != "10.9.0.5/24" {
				t.Errorf("result IPs %v, want the master's 10.9.0.5/24", r100.IPs)
			}
		})
	}
}

func TestAddFailureRollsBackEarlierDelegatesInReverse(t *testing.T) {
	for _, tc := range []struct {
		fail      string
		index     int
		ifName    string
		wantCalls string
	}{
		{"ptp", 0, "net1", "ADD ptp net1"},
		{"bridge", 1, "eth0", "ADD ptp net1, ADD bridge eth0, DEL ptp net1"},
		{"macvlan", 2, "net2", "ADD ptp net1, ADD bridge eth0, ADD macvlan net2, DEL bridge eth0, DEL ptp net1"},
	} {
		t.Run(tc.fail, func(t *testing.T) {
			ex := newFakeExec()
			cause := types.NewError(types.ErrTryAgainLater, "no address left", "pool exhausted")
			ex.fail["ADD "+tc.fail] = cause
			r := newRunner(t, ex)
			ds := delegates(t, "1.0.0", threeDelegates, "eth0")
			res, err := r.Add(context.Background(), attachment("c1"), "1.0.0", ds)
			if err == nil || res != nil {
				t.Fatalf("Add = %v, %v; want an error", res, err)
			}
			if got := callNames(ex.taken()); got != tc.wantCalls {
				t.Errorf("calls = %s, want %s", got, tc.wantCalls)
			}
			wantNoFile(t, cachePath(r, "c1", "eth0"))
			wantDelegateError(t, err, tc.index, tc.fail, tc.ifName, "ADD", cause)
			var te *types.Error
			if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater || te.Details != "pool exhausted" {
				t.Errorf("errors.As(*types.Error) = %+v, want the delegate's code and details", te)
			}
		})
	}
}

func TestAddFailureReportsRollbackFailureToo(t *testing.T) {
	ex := newFakeExec()
	ex.fail["ADD macvlan"] = types.NewError(types.ErrInternal, "boom", "")
	ex.fail["DEL ptp"] = errors.New("ptp DEL failed")
	r := newRunner(t, ex)
	ds := delegates(t, "1.0.0", threeDelegates, "eth0")
	_, err := r.Add(context.Background(), attachment("c1"), "1.0.0", ds)
	if got, want := callNames(ex.taken()), "ADD ptp net1, ADD bridge eth0, ADD macvlan net2, DEL bridge eth0, DEL ptp net1"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	var de *delegation.Error
	if !errors.As(err, &de) || de.Index != 2 || de.Op != "ADD" {
		t.Errorf("error %v does not lead with the ADD failure of delegate 2", err)
	}
	if err == nil || !strings.Contains(err.Error(), "rollback") || !strings.Contains(err.Error(), "ptp DEL failed") {
		t.Errorf("error %v does not report the failed rollback", err)
	}
	if _, serr := os.Stat(cachePath(r, "c1", "eth0")); serr != nil {
		t.Errorf("cache gone after a failed rollback (a DEL could not retry): %v", serr)
	}
}
