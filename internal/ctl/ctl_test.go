package ctl

import (
	"bytes"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

func TestQuoteEscapesForDOT(t *testing.T) {
	tests := map[string]string{
		`plain`:         `"plain"`,
		`a"b`:           `"a\"b"`,
		`back\slash`:    `"back\\slash"`,
		"two\nlines\r":  `"two\nlines"`,
		`in"1\n`:        `"in\"1\\n"`,
		"default/pod-a": `"default/pod-a"`,
	}
	for in, want := range tests {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestHumanAge(t *testing.T) {
	tests := map[time.Duration]string{
		-time.Second: "0s", 5 * time.Second: "5s", 119 * time.Second: "119s", 5 * time.Minute: "5m",
		3 * time.Hour: "3h", 47 * time.Hour: "47h", 72 * time.Hour: "3d",
	}
	for d, want := range tests {
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseTakesFlagsAroundArguments(t *testing.T) {
	a := &app{}
	fs := a.flagSet("delete")
	all := fs.Bool("all", false, "")
	pos, err := parse(fs, []string{"-n", "lab", "pod-a", "--all", "pod-b", "--etcd-api", "v3"})
	if err != nil || !reflect.DeepEqual(pos, []string{"pod-a", "pod-b"}) || !*all || a.namespace != "lab" {
		t.Fatalf("pos %v all %v ns %q err %v", pos, *all, a.namespace, err)
	}
	if _, err := parse(a.flagSet("x"), []string{"--nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
	if _, err := parse(a.flagSet("x"), []string{"-h"}); err != flag.ErrHelp {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
}

func TestPopulateRecordsAreTheSeedPods(t *testing.T) {
	a := &app{namespace: "lab"}
	recs, err := populateRecords(a, []string{"primary"}, "abc123", "", "", "eth0")
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	p, err := metadata.Parse(recs[0].Labels, "eth0")
	want := &metadata.Pod{Name: "primary-pod", Namespace: "lab", Primary: true, TargetPod: "primary-pod",
		TargetContainer: "abc123", PublicIP: "1.1.1.1", Links: []metadata.Link{{Peer: "pair-pod", IfName: "in1",
			IP: "192.168.2.100/24", PeerIfName: "in2", PeerIP: "192.168.2.101/24"}}}
	if err != nil || !reflect.DeepEqual(p, want) {
		t.Errorf("primary: %+v, %v", p, err)
	}
	recs, err = populateRecords(&app{}, []string{"pair"}, "", "", "", "eth0")
	if err != nil || recs[0].Labels[metadata.KeyPrimary] != "false" || recs[0].Labels[metadata.KeyPairName] != "primary-pod" {
		t.Errorf("pair: %v, %v", recs, err)
	}
	for _, bad := range [][]string{nil, {"third"}, {"primary", "pair"}} {
		if _, err := populateRecords(&app{}, bad, "", "", "", "eth0"); err == nil {
			t.Errorf("populate %q: no error", bad)
		}
	}
}

// fixedSnapshot has a wired veth, a failed vxlan and an announced-only pod.
func fixedSnapshot(now time.Time) *snapshot {
	rec := func(name, host, cid string) store.Entry[store.PodRecord] {
		return store.Entry[store.PodRecord]{Key: "/r/pods/default/" + name, Value: store.PodRecord{
			Namespace: "default", Name: name, ContainerID: cid, Host: host, HostAddress: "198.51.100.1", Created: now.Add(-90 * time.Second)}}
	}
	link := func(a, b store.LinkEnd, state store.LinkState, vni uint32, reason string) store.Entry[store.LinkRecord] {
		return store.Entry[store.LinkRecord]{Value: store.LinkRecord{ID: store.LinkID(a.Pod, a.IfName, b.Pod, b.IfName),
			Namespace: "default", A: a, B: b, State: state, VNI: vni, Reason: reason, Updated: now.Add(-3 * time.Minute)}}
	}
	return &snapshot{
		pods: []store.Entry[store.PodRecord]{rec("a", "node0", "0123456789abcdef"), rec("b", "node0", "fedcba9876543210")},
		links: []store.Entry[store.LinkRecord]{
			link(store.LinkEnd{Pod: "a", IfName: "in1", IP: "10.0.0.1/30", Host: "node0", Up: true},
				store.LinkEnd{Pod: "b", IfName: "in2", IP: "10.0.0.2/30", Up: true}, store.LinkWired, 0, ""),
			link(store.LinkEnd{Pod: "b", IfName: "x1"}, store.LinkEnd{Pod: "c", IfName: "x2"}, store.LinkFailed, 5000, "peer gone"),
		},
		announced: []store.Entry[map[string]string]{{Key: "/r/announce/default/c", Value: map[string]string{
			"ratchet": "true", "ratchet.pod_name": "c", "ratchet.primary": "true", "ratchet.local_ifname": "y1",
			"ratchet.pair_name": "d", "ratchet.pair_ifname": "y2"}}},
	}
}

func TestStatusTableAndDOTOfASnapshot(t *testing.T) {
	now := time.Now()
	snap := fixedSnapshot(now)
	st := snap.status()
	if len(st.Pods) != 3 || st.Pods[0].Links != 1 || st.Pods[1].Links != 2 || st.Pods[2].Recorded || !st.Pods[2].Announced {
		t.Fatalf("pods %+v", st.Pods)
	}
	if st.Links[0].B.Host != "node0" || st.Links[1].Kind != "vxlan" {
		t.Errorf("links %+v", st.Links)
	}
	var b bytes.Buffer
	if err := writeTable(&b, st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0123456789ab ", "90s", "a:in1 10.0.0.1/30", "wired", "failed", "5000", "peer gone", "3m"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	extra := snap.announcedLinks(st.Links)
	if len(extra) != 1 || extra[0].State != stateAnnounced || extra[0].B.Pod != "d" {
		t.Fatalf("announced links %+v", extra)
	}
	if err := writeDOT(&b, st, extra); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"default/c" -- "default/d"`, "style=dashed", "color=gray", `subgraph cluster_0 {`, `label="host node0"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("DOT lacks %q:\n%s", want, b.String())
		}
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"help"}, nil, &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for name := range commands {
		if !strings.Contains(out.String(), "ratchetctl [etcd flags] "+name) {
			t.Errorf("help lacks %s", name)
		}
	}
}

func TestAgentsTableShowsHostAddressVersionUptimePodsLinks(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	err := writeAgents(&b, []store.AgentRecord{{Host: "node1", Address: "198.51.100.1", Version: "v0.2.0",
		Started: now.Add(-90 * time.Second), Pods: 3, Links: 4, Pending: 1, PID: 42}}, now)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "node1 198.51.100.1 v0.2.0 1m30s 3 4 1 42" {
		t.Errorf("agents table:\n%s", b.String())
	}
}
