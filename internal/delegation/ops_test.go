package delegation_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/delegation"
)

func TestDelRunsReverseWithEachDelegatesCachedResult(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	ds := addThree(t, r, ex, "c1")
	if err := r.Del(context.Background(), attachment("c1"), ds); err != nil {
		t.Fatalf("Del: %v", err)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "DEL macvlan net2, DEL bridge eth0, DEL ptp net1"; got != want {
		t.Fatalf("calls = %s, want %s", got, want)
	}
	for _, c := range calls {
		if got := c.prevIP(t); got != threeIPs[c.Plugin] {
			t.Errorf("%s: prevResult address %q, want its own %s", c, got, threeIPs[c.Plugin])
		}
	}
	wantNoFile(t, cachePath(r, "c1", "eth0"))
}

func TestDelContinuesPastFailuresJoinsThemAndKeepsCache(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	ds := addThree(t, r, ex, "c1")
	macErr := types.NewError(types.ErrIOFailure, "macvlan stuck", "")
	ptpErr := types.NewError(types.ErrInternal, "ptp stuck", "")
	ex.fail["DEL macvlan"], ex.fail["DEL ptp"] = macErr, ptpErr

	err := r.Del(context.Background(), attachment("c1"), ds)
	if got, want := callNames(ex.taken()), "DEL macvlan net2, DEL bridge eth0, DEL ptp net1"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	if n := len(flatten(err)); n != 2 {
		t.Fatalf("Del error %v joins %d errors, want 2", err, n)
	}
	wantDelegateError(t, err, 2, "macvlan", "net2", "DEL", macErr)
	wantDelegateError(t, err, 0, "ptp", "net1", "DEL", ptpErr)
	if _, err := r.ReadCache("c1", "eth0"); err != nil {
		t.Fatalf("cache not kept after a failed DEL: %v", err)
	}

	// The retry still has every delegate's result, and removes the cache.
	clear(ex.fail)
	if err := r.Del(context.Background(), attachment("c1"), ds); err != nil {
		t.Fatalf("retried Del: %v", err)
	}
	for _, c := range ex.taken() {
		if got := c.prevIP(t); got != threeIPs[c.Plugin] {
			t.Errorf("retry %s: prevResult address %q, want %s", c, got, threeIPs[c.Plugin])
		}
	}
	wantNoFile(t, cachePath(r, "c1", "eth0"))
}

func TestDelWithoutUsableCacheFallsBackToGivenDelegates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache string // "" = no file
	}{
		{"missing", ""},
		{"not JSON", `{"containerID":`},
		{"other attachment", `{"containerID":"c9","ifname":"eth0","delegates":[{"type":"ipvlan","conf":{}}]}`},
		{"no delegates", `{"containerID":"c1","ifname":"eth0","delegates":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := newFakeExec()
			r := newRunner(t, ex)
			path := cachePath(r, "c1", "eth0")
			if tc.cache != "" {
				if err := os.MkdirAll(r.CacheDir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(tc.cache), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ds := delegates(t, "1.0.0", threeDelegates, "eth0")
			if err := r.Del(context.Background(), attachment("c1"), ds); err != nil {
				t.Fatalf("Del: %v", err)
			}
			calls := ex.taken()
			if got, want := callNames(calls), "DEL macvlan net2, DEL bridge eth0, DEL ptp net1"; got != want {
				t.Errorf("calls = %s, want %s", got, want)
			}
			for _, c := range calls {
				if ip := c.prevIP(t); ip != "" {
					t.Errorf("%s: prevResult %s without a cache", c, ip)
				}
			}
			wantNoFile(t, path)
		})
	}
}

func TestDelTwiceSucceeds(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	ds := addThree(t, r, ex, "c1")
	for i := range 2 {
		if err := r.Del(context.Background(), attachment("c1"), ds); err != nil {
			t.Fatalf("Del #%d: %v", i+1, err)
		}
	}
}

func TestCheckPassesEachDelegateItsOwnResultAndSkipsPre040(t *testing.T) {
	ex := newFakeExec()
	ex.results["ptp"] = result("0.3.1", threeIPs["ptp"])
	r := newRunner(t, ex)
	list := `[{"type":"ptp","cniVersion":"0.3.1"},{"type":"bridge","masterplugin":true},{"type":"macvlan","cniVersion":"0.4.0"}]`
	ds := delegates(t, "1.0.0", list, "eth0")
	if _, err := r.Add(context.Background(), attachment("c1"), "1.0.0", ds); err != nil {
		t.Fatalf("Add: %v", err)
	}
	ex.taken()
	if err := r.Check(context.Background(), attachment("c1"), json.RawMessage(result("1.0.0", "10.7.7.7/24"))); err != nil {
		t.Fatalf("Check: %v", err)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "CHECK bridge eth0, CHECK macvlan net2"; got != want {
		t.Fatalf("calls = %s, want %s (ptp is 0.3.1: no CHECK)", got, want)
	}
	for _, c := range calls {
		if got := c.prevIP(t); got != threeIPs[c.Plugin] {
			t.Errorf("%s: prevResult address %q, want its own %s", c, got, threeIPs[c.Plugin])
		}
	}
}

func TestCheckReportsFailingDelegateAndMissingCache(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	addThree(t, r, ex, "c1")
	bad := types.NewError(types.ErrInternal, "address gone", "")
	ex.fail["CHECK bridge"] = bad
	err := r.Check(context.Background(), attachment("c1"), nil)
	wantDelegateError(t, err, 1, "bridge", "eth0", "CHECK", bad)
	if got, want := callNames(ex.taken()), "CHECK ptp net1, CHECK bridge eth0, CHECK macvlan net2"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	if err := r.Check(context.Background(), attachment("nope"), nil); !errors.Is(err, delegation.ErrNoCache) {
		t.Errorf("Check without a cache = %v, want ErrNoCache", err)
	}
}

func TestStatusCallsOnly110Delegates(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	list := `[{"type":"ptp"},{"type":"bridge","cniVersion":"1.0.0"},{"type":"macvlan"}]`
	ds := delegates(t, "1.1.0", list, "eth0")
	if err := r.Status(context.Background(), ds); err != nil {
		t.Fatalf("Status: %v", err)
	}
	if got, want := callNames(ex.taken()), "STATUS ptp eth0, STATUS macvlan net2"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	down := types.NewError(types.ErrPluginNotAvailable, "not ready", "")
	ex.fail["STATUS macvlan"] = down
	wantDelegateError(t, r.Status(context.Background(), ds), 2, "macvlan", "net2", "STATUS", down)
}

func TestGCDeletesStaleAttachmentsAndTranslatesValidOnes(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	list := `[{"type":"bridge"},{"type":"ptp"},{"type":"macvlan","cniVersion":"1.0.0"}]`
	ds := delegates(t, "1.1.0", list, "eth0")
	for _, id := range []string{"c1", "c2"} {
		if _, err := r.Add(context.Background(), attachment(id), "1.1.0", ds); err != nil {
			t.Fatalf("Add %s: %v", id, err)
		}
	}
	ex.taken()
	valid := []types.GCAttachment{{ContainerID: "c1", IfName: "eth0"}, {ContainerID: "c3", IfName: "eth0"}}
	removed, err := r.GC(context.Background(), valid, ds)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if !slices.Equal(removed, []string{"c2"}) {
		t.Errorf("removed = %v, want [c2]", removed)
	}
	calls := ex.taken()
	if got, want := callNames(calls), "DEL macvlan net2, DEL ptp net1, DEL bridge eth0, GC bridge eth0, GC ptp net1"; got != want {
		t.Fatalf("calls = %s, want %s", got, want)
	}
	for _, c := range calls[:3] {
		if c.ContainerID != "c2" || c.prevIP(t) != threeIPs[c.Plugin] {
			t.Errorf("%s: container %q prevResult %q, want c2's own result", c, c.ContainerID, c.prevIP(t))
		}
	}
	for _, tc := range []struct {
		call   execCall
		ifName string
	}{{calls[3], "eth0"}, {calls[4], "net1"}} {
		var got []types.GCAttachment
		if err := json.Unmarshal(tc.call.Conf["cni.dev/valid-attachments"], &got); err != nil {
			t.Fatalf("%s: valid attachments: %v", tc.call, err)
		}
		want := []types.GCAttachment{{ContainerID: "c1", IfName: tc.ifName}, {ContainerID: "c3", IfName: tc.ifName}}
		if !slices.Equal(got, want) {
			t.Errorf("%s: valid attachments %v, want %v", tc.call, got, want)
		}
	}
	wantNoFile(t, cachePath(r, "c2", "eth0"))
	if _, err := r.ReadCache("c1", "eth0"); err != nil {
		t.Errorf("valid attachment's cache: %v", err)
	}
}
