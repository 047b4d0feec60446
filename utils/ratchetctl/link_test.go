package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/ctl"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// TestLinkCommandsChangeTheRecord runs the built ratchetctl against a real
// etcd holding one link record (as the plugin writes it, without pods):
// set, clear, down and up change it; status and topology show the result;
// bad input and unknown links exit 2 and write nothing.
func TestLinkCommandsChangeTheRecord(t *testing.T) {
	skipShort(t)
	bin := testenv.Bin(t, pkgCtl)
	e := testenv.StartEtcd(t)
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		ctx := context.Background()
		prefix := "/" + testenv.UniqueName("lk")
		k := store.Keys{Prefix: prefix}
		kv, err := store.New(store.Config{Endpoints: []string{e.URL}, API: api, Prefix: prefix, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = kv.DeleteDir(context.Background(), prefix)
			kv.Close()
		})
		id := store.LinkID("centosa", "in1", "quagga-a", "in1")
		rec := store.LinkRecord{ID: id, Namespace: "lab", State: store.LinkWired, VNI: 4100, Declarer: "centosa",
			Updated: time.Now().UTC(),
			A:       store.LinkEnd{Pod: "centosa", IfName: "in1", IP: "192.0.2.1/30", Host: "h0", Up: true},
			B: store.LinkEnd{Pod: "quagga-a", IfName: "in1", IP: "192.0.2.2/30", Host: "h1", Up: true,
				Netem: &netem.Spec{Delay: "10ms"}, Applied: "not applied: delay: kernel has no sch_netem"}}
		if _, err := store.CreateJSON(ctx, kv, k.Link("lab", id), rec, 0); err != nil {
			t.Fatal(err)
		}
		env := testenv.EtcdEnv(e.URL, api, prefix)
		run := func(args ...string) (int, string, string) { return testenv.RunEnv(t, env, bin, args...) }
		get := func() store.LinkRecord {
			r, _, err := store.GetLink(ctx, kv, k, "lab", id)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		must := func(args ...string) string {
			t.Helper()
			code, out, errOut := run(args...)
			if code != 0 {
				t.Fatalf("ratchetctl %q: exit %d: %s%s", args, code, out, errOut)
			}
			return out
		}

		out := must("link", "set", "lab/"+id, "--loss", "30%", "--rate", "1mbit", "--end", "a")
		r := get()
		if !reflect.DeepEqual(r.A.Netem, &netem.Spec{Loss: "30%", Rate: "1mbit"}) || !reflect.DeepEqual(r.B.Netem, &netem.Spec{Delay: "10ms"}) ||
			!r.NetemSet || r.B.Applied == "" || !strings.Contains(out, "loss 30% rate 1mbit") {
			t.Fatalf("set --end a: %+v / %+v: %s", r.A, r.B, out)
		}
		must("link", "down", "-n", "lab", id)
		if r := get(); !r.IsDown() {
			t.Fatalf("after down: admin %q", r.Admin)
		}

		var st ctl.Status
		if err := json.Unmarshal([]byte(must("status", "-n", "lab", "-o", "json")), &st); err != nil || len(st.Links) != 1 {
			t.Fatalf("status json: %v %+v", err, st)
		}
		if l := st.Links[0]; l.ID != id || l.Admin != "down" || l.A.Netem == nil || l.A.Netem.Rate != "1mbit" ||
			!strings.Contains(l.B.Applied, "sch_netem") || !l.NetemSet {
			t.Errorf("status json link %+v", l)
		}
		table := must("status", "-n", "lab")
		if !tableHasLine(table, []string{id, "wired", "down", "a: loss 30% rate 1mbit [not applied yet]",
			"b: delay 10ms [not applied: delay: kernel has no sch_netem]"}) {
			t.Errorf("status table:\n%s", table)
		}
		dot := must("topology", "-n", "lab")
		for _, want := range []string{"admin down", "style=dashed", "centosa.in1 -> quagga-a.in1: loss 30% rate 1mbit",
			"quagga-a.in1 -> centosa.in1: delay 10ms (not all applied)"} {
			if !strings.Contains(dot, want) {
				t.Errorf("topology lacks %q:\n%s", want, dot)
			}
		}

		// Bad values and unknown links: exit 2, naming the flag or the
		// link and namespace, nothing written.
		before, err := kv.Get(ctx, k.Link("lab", id))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"link", "set", "lab/" + id, "--loss", "30"}, "--loss"},
			{[]string{"link", "set", "lab/" + id, "--end", "b", "--reorder", "5%", "--delay", "0"}, "--reorder"},
			{[]string{"link", "up", "lab/centosa.in1--quagga-b.in1"}, "centosa.in1--quagga-b.in1: no such link in namespace lab"},
			{[]string{"link", "up", id}, "no such link in namespace default"},
		} {
			code, _, errOut := run(tc.args...)
			if code != ctl.ExitBadInput || !strings.Contains(errOut, tc.want) {
				t.Errorf("ratchetctl %q: exit %d, want 2 naming %q: %s", tc.args, code, tc.want, errOut)
			}
		}
		if after, err := kv.Get(ctx, k.Link("lab", id)); err != nil || after.Version != before.Version {
			t.Errorf("rejected commands wrote the record: %v", err)
		}

		must("link", "up", "lab/"+strings.Join([]string{"quagga-a.in1", "centosa.in1"}, "--")) // either order
		must("link", "clear", "lab/"+id)
		if r := get(); r.IsDown() || r.Admin != store.AdminUp || r.A.Netem != nil || r.B.Netem != nil || !r.NetemSet {
			t.Errorf("after up and clear: %+v", r)
		}
		if out := must("status", "-n", "lab", "-o", "json"); !strings.Contains(out, `"admin": "up"`) || strings.Contains(out, `"netem"`) {
			t.Errorf("status json after clear:\n%s", out)
		}
	})
}
