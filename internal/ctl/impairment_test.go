package ctl

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// impairedSnapshot is fixedSnapshot with the wired link impaired (end a
// applied, end b not applicable) and the failed one set down.
func impairedSnapshot(now time.Time) *snapshot {
	s := fixedSnapshot(now)
	w := &s.links[0].Value
	w.A.Netem, w.A.Applied = &netem.Spec{Loss: "30%", Rate: "1mbit"}, "tbf+bpf"
	w.B.Netem, w.B.Applied = &netem.Spec{Delay: "50ms"}, "not applied: delay: kernel has no sch_netem"
	w.NetemSet = true
	f := &s.links[1].Value
	f.Admin = store.AdminDown
	f.A.Netem, f.B.Netem = &netem.Spec{Loss: "1%"}, &netem.Spec{Loss: "1%"}
	return s
}

func TestStatusShowsAdminAndImpairments(t *testing.T) {
	now := time.Now()
	st := impairedSnapshot(now).status()
	var b bytes.Buffer
	if err := writeTable(&b, st, now); err != nil {
		t.Fatal(err)
	}
	table := b.String()
	if !strings.Contains(table, "ADMIN") || !strings.Contains(table, "IMPAIRMENT") {
		t.Errorf("table header lacks ADMIN/IMPAIRMENT:\n%s", table)
	}
	for _, want := range [][]string{
		{"a.in1--b.in2", "wired", " up ", "a: loss 30% rate 1mbit [tbf+bpf]; b: delay 50ms [not applied: delay: kernel has no sch_netem]"},
		{"b.x1--c.x2", "failed", " down ", "a,b: loss 1% [not applied yet]"},
	} {
		if !tableHasLine(table, want) {
			t.Errorf("no line of the table has all of %q:\n%s", want, table)
		}
	}

	b.Reset()
	if err := writeJSON(&b, st); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Links []map[string]json.RawMessage `json:"links"`
	}
	if err := json.Unmarshal(b.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	var a0 struct {
		Netem   *netem.Spec `json:"netem"`
		Applied string      `json:"applied"`
	}
	if err := json.Unmarshal(raw.Links[0]["a"], &a0); err != nil || a0.Netem == nil || a0.Netem.Loss != "30%" || a0.Applied != "tbf+bpf" {
		t.Errorf("a of link 0: %s", raw.Links[0]["a"])
	}
	for i, want := range []string{`"up"`, `"down"`} {
		if got := string(raw.Links[i]["admin"]); got != want {
			t.Errorf("link %d admin = %s, want %s", i, got, want)
		}
	}
	// Existing fields are kept.
	for _, f := range []string{"id", "namespace", "state", "kind", "vni", "mtu", "a", "b"} {
		if _, ok := raw.Links[1][f]; !ok && f != "mtu" {
			t.Errorf("link JSON lacks %q: %v", f, raw.Links[1])
		}
	}
	// A link never set down says up, not "".
	if l := fixedSnapshot(now).status().Links[0]; l.Admin != "up" {
		t.Errorf("admin of a plain link = %q", l.Admin)
	}
}

func TestTopologyMarksImpairmentAndDown(t *testing.T) {
	now := time.Now()
	snap := impairedSnapshot(now)
	st := snap.status()
	// An announced link c–e declaring an impairment for c's end only.
	extra := append(snap.announcedLinks(st.Links), LinkStatus{ID: "c.z1--e.z2", Namespace: "default", State: stateAnnounced,
		A: EndStatus{Pod: "c", IfName: "z1", Netem: &netem.Spec{Delay: "5ms"}}, B: EndStatus{Pod: "e", IfName: "z2"}})
	var b bytes.Buffer
	if err := writeDOT(&b, st, extra); err != nil {
		t.Fatal(err)
	}
	edges := map[string]string{}
	for _, line := range strings.Split(b.String(), "\n") {
		if ends, _, ok := strings.Cut(strings.TrimSpace(line), " ["); ok && strings.Contains(ends, " -- ") {
			edges[ends] = line
		}
	}
	wired := edges[`"default/a" -- "default/b"`]
	for _, want := range []string{`a.in1 -> b.in2: loss 30% rate 1mbit`, `b.in2 -> a.in1: delay 50ms (not all applied)`} {
		if !strings.Contains(wired, want) {
			t.Errorf("wired edge lacks %q: %s", want, wired)
		}
	}
	if strings.Contains(wired, "dashed") || strings.Contains(wired, "admin down") {
		t.Errorf("wired edge drawn down: %s", wired)
	}
	failed := edges[`"default/b" -- "default/c"`]
	for _, want := range []string{"admin down", "style=dashed", `\nloss 1%"`} {
		if !strings.Contains(failed, want) {
			t.Errorf("down edge lacks %q: %s", want, failed)
		}
	}
	if ann := edges[`"default/c" -- "default/e"`]; !strings.Contains(ann, `c.z1 -> e.z2: delay 5ms`) || strings.Contains(ann, "admin down") {
		t.Errorf("announced edge lacks its impairment: %s", ann)
	}
}

// tableHasLine reports whether one line of table contains every field.
func tableHasLine(table string, fields []string) bool {
	for _, line := range strings.Split(table, "\n") {
		ok := true
		for _, f := range fields {
			ok = ok && strings.Contains(line, f)
		}
		if ok {
			return true
		}
	}
	return false
}

func TestSpecTextOfAnInvalidRecord(t *testing.T) {
	if got := specText(&netem.Spec{Loss: "lots\n", Rate: "1mbit"}); got != `invalid: loss "lots\n" rate "1mbit"` {
		t.Errorf("specText = %q", got)
	}
	if got := specText(nil); got != "none" {
		t.Errorf("specText(nil) = %q", got)
	}
}

// A cross-host link's end that is a veth kept from the link's same-host
// days is marked in the table and the JSON.
func TestStatusMarksAKeptVeth(t *testing.T) {
	now := time.Now()
	s := fixedSnapshot(now)
	w := &s.links[0].Value
	w.VNI, w.B.Stitched = 4100, true
	st := s.status()
	var b bytes.Buffer
	if err := writeTable(&b, st, now); err != nil {
		t.Fatal(err)
	}
	if !tableHasLine(b.String(), []string{"a.in1--b.in2", "4100 (b: kept veth)"}) {
		t.Errorf("no line marks b's kept veth:\n%s", b.String())
	}
	b.Reset()
	if err := writeJSON(&b, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"stitched": true`) {
		t.Errorf("JSON lacks the stitched end:\n%s", b.String())
	}
}
