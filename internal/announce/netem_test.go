package announce

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// impairedPairFile is the example topology with an impaired link.
const impairedPairFile = "examples/impaired-pair.topology.yaml"

// mustPods returns the topology's pods as Records builds them.
func mustPods(t *testing.T, src string) map[string]*metadata.Pod {
	t.Helper()
	topo, err := ParseTopology([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	pods, err := topo.pods("eth0")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*metadata.Pod{}
	for _, p := range pods {
		out[p.Name] = p
	}
	return out
}

// parsedRecords returns what the plugin reads from each record.
func parsedRecords(t *testing.T, src string) map[string]*metadata.Pod {
	t.Helper()
	out := map[string]*metadata.Pod{}
	for _, r := range mustRecords(t, src) {
		p, err := metadata.Parse(r.Labels, "eth0")
		if err != nil || p == nil {
			t.Fatalf("record of %s does not parse: %v", r, err)
		}
		if !reflect.DeepEqual(r.Labels, metadata.Labels(p)) {
			t.Errorf("record of %s is not metadata.Labels of itself: %v", r, r.Labels)
		}
		out[r.Name] = p
	}
	return out
}

// ends returns a link's impairments: netem, local_netem, peer_netem.
func ends(l metadata.Link) [3]*netem.Spec { return [3]*netem.Spec{l.Netem, l.LocalNetem, l.PeerNetem} }

func TestTopologyNetemPerEndAndReversed(t *testing.T) {
	src := `
namespace: lab
pods:
  - name: r1
    links:
      - {peer: r4, ifname: o1, peer_ifname: o1, netem: {loss: 2%}, local_netem: {delay: 1ms}, peer_netem: {rate: 1mbit}}
      - {peer: r5, ifname: o2, peer_ifname: o1, peer_netem: {}}
links:
  - a: {pod: r1, ifname: in1, ip: 10.0.0.1/30, netem: {delay: 10ms}}
    b: {pod: r2, ifname: in1, ip: 10.0.0.2/30}
    netem: {loss: 1%, rate: 100mbit}
  - a: {pod: r2, ifname: in2}
    b: {pod: r3, ifname: in1, netem: {corrupt: 0.1%}}
  - a: {pod: r3, ifname: in2}
    b: {pod: r6, ifname: in1}
    netem: {duplicate: 5%}
`
	loss1, delay10 := &netem.Spec{Loss: "1%", Rate: "100mbit"}, &netem.Spec{Delay: "10ms"}
	corrupt, dup := &netem.Spec{Corrupt: "0.1%"}, &netem.Spec{Duplicate: "5%"}
	loss2, delay1, rate1 := &netem.Spec{Loss: "2%"}, &netem.Spec{Delay: "1ms"}, &netem.Spec{Rate: "1mbit"}
	pods := mustPods(t, src)
	for _, tc := range []struct {
		name     string
		link     metadata.Link
		want     [3]*netem.Spec
		aEgress  *netem.Spec // EndNetem(true) of the link as given
		bEgress  *netem.Spec // EndNetem(false)
		peerName string
	}{
		{"r1 declares its own link to r4", pods["r1"].Links[0], [3]*netem.Spec{loss2, delay1, rate1}, delay1, rate1, "r4"},
		{"r4 expects it reversed", pods["r4"].Expects[0], [3]*netem.Spec{loss2, rate1, delay1}, rate1, delay1, "r1"},
		{"peer_netem {} is none", pods["r1"].Links[1], [3]*netem.Spec{}, nil, nil, "r5"},
		{"r1 declares links[0]: netem and a.netem", pods["r1"].Links[2], [3]*netem.Spec{loss1, delay10, nil}, delay10, loss1, "r2"},
		{"r2 expects links[0] reversed", pods["r2"].Expects[0], [3]*netem.Spec{loss1, nil, delay10}, loss1, delay10, "r1"},
		{"r2 declares links[1]: b.netem", pods["r2"].Links[0], [3]*netem.Spec{nil, nil, corrupt}, nil, corrupt, "r3"},
		{"r3 expects links[1] reversed", pods["r3"].Expects[0], [3]*netem.Spec{nil, corrupt, nil}, corrupt, nil, "r2"},
		{"r3 declares links[2]: netem only", pods["r3"].Links[0], [3]*netem.Spec{dup, nil, nil}, dup, dup, "r6"},
		{"r6 expects links[2]", pods["r6"].Expects[0], [3]*netem.Spec{dup, nil, nil}, dup, dup, "r3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.link.Peer != tc.peerName {
				t.Fatalf("link %+v: peer %q, want %q", tc.link, tc.link.Peer, tc.peerName)
			}
			if got := ends(tc.link); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("netem, local_netem, peer_netem = %+v, want %+v", got, tc.want)
			}
			if a, b := tc.link.EndNetem(true), tc.link.EndNetem(false); !reflect.DeepEqual(a, tc.aEgress) || !reflect.DeepEqual(b, tc.bEgress) {
				t.Errorf("egress here %+v, there %+v; want %+v, %+v", a, b, tc.aEgress, tc.bEgress)
			}
		})
	}

	// The records: declared links whole; an expected link (labels hold
	// the first only) keeps an impairment only as far as the pair keys say
	// it exactly, and the plugin learns the rest from the declarer.
	recs := parsedRecords(t, src)
	for _, name := range []string{"r1", "r2", "r3"} {
		if !reflect.DeepEqual(recs[name].Links, pods[name].Links) {
			t.Errorf("%s's record declares %+v, want %+v", name, recs[name].Links, pods[name].Links)
		}
	}
	if got := recs["r6"].Expects; len(got) != 1 || !reflect.DeepEqual(got[0].Netem, dup) {
		t.Errorf("r6's record expects %+v, want the link with netem %+v", got, dup)
	}
	if got := recs["r4"].Expects; len(got) != 1 || !reflect.DeepEqual(ends(got[0]), [3]*netem.Spec{}) {
		t.Errorf("r4's record expects %+v, want the link without impairments (the pair keys cannot say one end's)", got)
	}
}

func TestTopologyNetemEveryFieldRoundTrips(t *testing.T) {
	recs := parsedRecords(t, `
links:
  - a: {pod: x, ifname: in1, netem: {delay: 1.5ms, jitter: 250us, loss: 0.0001%, rate: 1.5MBPS, corrupt: 100%, duplicate: 0%, reorder: 50%}}
    b: {pod: y, ifname: in1, netem: {delay: 60s, rate: 8bit}}
    netem: {rate: 100gbit}
`)
	want := metadata.Link{Peer: "y", IfName: "in1", PeerIfName: "in1",
		Netem:      &netem.Spec{Rate: "100gbit"},
		LocalNetem: &netem.Spec{Delay: "1.5ms", Jitter: "250us", Loss: "0.0001%", Rate: "1.5MBPS", Corrupt: "100%", Duplicate: "0%", Reorder: "50%"},
		PeerNetem:  &netem.Spec{Delay: "60s", Rate: "8bit"}}
	if got := recs["x"].Links; len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("x declares %+v\nwant %+v", got, want)
	}
}

// Topology files spell netem.Spec's fields with its JSON names: the YAML
// decoder must see every one of them under that name (a field whose YAML
// key differed would be an "unknown key" in topologies only).
func TestTopologyNetemKeysAreTheJSONNames(t *testing.T) {
	rt := reflect.TypeFor[netem.Spec]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		topo, err := ParseTopology([]byte("links:\n  - a: {pod: x, ifname: a}\n    b: {pod: y, ifname: b}\n    netem: {" + name + ": v}\n"))
		if err != nil {
			t.Errorf("netem key %q: %v", name, err)
			continue
		}
		if got := reflect.ValueOf(*topo.Links[0].Netem).Field(i).String(); got != "v" {
			t.Errorf("netem key %q sets %s to %q", name, rt.Field(i).Name, got)
		}
	}
}

func TestBadTopologyNetemNamesPodAndField(t *testing.T) {
	link := func(a, b, rest string) string {
		return "links:\n  - a: {pod: x, ifname: in1" + a + "}\n    b: {pod: y, ifname: in1" + b + "}\n" + rest
	}
	own := func(fields string) string {
		return "pods:\n  - name: x\n    links:\n      - {peer: y, ifname: a, peer_ifname: b" + fields + "}\n"
	}
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"link loss", link("", "", "    netem: {loss: 150%}\n"), []string{"pod default/x: links[0].netem.loss: \"150%\": above 100%"}},
		{"a delay", link(", netem: {delay: 1 ms}", "", ""), []string{"pod default/x: links[0].a.netem.delay: \"1 ms\": want a duration"}},
		{"b rate", link("", ", netem: {rate: 100}", ""), []string{"pod default/y: links[0].b.netem.rate: \"100\": want a rate"}},
		{"b jitter needs delay", link("", ", netem: {jitter: 1ms}", ""), []string{"pod default/y: links[0].b.netem.jitter", "needs netem.delay"}},
		{"second link", link("", "", "") + "  - a: {pod: y, ifname: in2}\n    b: {pod: z, ifname: in1}\n    netem: {reorder: 1%}\n",
			[]string{"pod default/y: links[1].netem.reorder: \"1%\": needs netem.delay"}},
		{"a number", link("", "", "    netem: {loss: 1}\n"), []string{"links[0].netem.loss: \"1\": want a percentage"}},
		{"own netem", own(", netem: {duplicate: 101%}"), []string{"pod default/x: pods[0].links[0].netem.duplicate: \"101%\""}},
		{"own local_netem", own(", local_netem: {corrupt: x}"), []string{"pod default/x: pods[0].links[0].local_netem.corrupt: \"x\""}},
		{"own peer_netem", own(", peer_netem: {rate: 1gbitt}"), []string{"pod default/y: pods[0].links[0].peer_netem.rate: \"1gbitt\""}},
		{"unknown key in link netem", link("", "", "    netem: {lossy: 1%}\n"), []string{"line 4", "lossy"}},
		{"unknown key in a.netem", link(", netem: {delay: 1ms, limit: 5}", "", ""), []string{"line 2", "limit"}},
		{"unknown key in own peer_netem", own(", peer_netem: {gap: 5}"), []string{"line 4", "gap"}},
		{"netem not a mapping", link("", "", "    netem: 1%\n"), []string{"line 4"}},
		{"netem field a list", link("", ", netem: {loss: [1%]}", ""), []string{"line 3"}},
		{"netem on the wrong level", "links:\n  - a: {pod: x, ifname: in1}\n    b: {pod: y, ifname: in1}\n    loss: 1%\n", []string{"line 4", "loss"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			topo, err := ParseTopology([]byte(tt.src))
			if err == nil {
				_, err = topo.Records("eth0")
			}
			if err == nil || !IsInput(err) {
				t.Fatalf("err = %v, want an InputError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// The impaired-pair example: client's egress delayed, server's lossy and
// rate-limited, in client's record; server expects the link.
func TestImpairedPairExample(t *testing.T) {
	data, err := os.ReadFile(testenv.RepoFile(impairedPairFile))
	if err != nil {
		t.Fatal(err)
	}
	recs := parsedRecords(t, string(data))
	link := metadata.Link{Peer: "server", IfName: "in1", IP: "198.51.100.1/30", PeerIfName: "in1", PeerIP: "198.51.100.2/30",
		Netem: &netem.Spec{Loss: "1%", Rate: "100mbit"}, LocalNetem: &netem.Spec{Delay: "10ms"}}
	want := map[string]*metadata.Pod{
		"client": {Name: "client", Namespace: "default", Primary: true, Links: []metadata.Link{link}},
		// Labels cannot say one end's impairment of an expected link: the
		// plugin takes it from client's record.
		"server": {Name: "server", Namespace: "default", Expects: []metadata.Link{
			{Peer: "client", IfName: "in1", IP: "198.51.100.2/30", PeerIfName: "in1", PeerIP: "198.51.100.1/30"}}},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Fatalf("records\n got %+v\nwant %+v", recs, want)
	}
	rev := recs["client"].Links[0].Reversed("client")
	if here, there := rev.EndNetem(true), rev.EndNetem(false); !reflect.DeepEqual(here, link.Netem) || !reflect.DeepEqual(there, link.LocalNetem) {
		t.Errorf("server's view: its egress %+v, client's %+v", here, there)
	}
	for _, r := range mustRecords(t, string(data)) {
		if r.Name == "client" && (r.Labels[metadata.KeyLinks] == "" || r.Labels[metadata.KeyNetem] != "") {
			t.Errorf("client's labels %v: a link with one end's netem belongs in ratchet.links", r.Labels)
		}
	}
}

func TestSidecarNetemMakesTheSeedLinkImpaired(t *testing.T) {
	env := map[string]string{"NETEM": `{"delay":"20ms", "loss":"0.5%"}`}
	for k, v := range sidecarEnv {
		env[k] = v
	}
	o, err := ParseArgs(nil, envFunc(env))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := o.Records()
	if err != nil {
		t.Fatal(err)
	}
	if got := recs[0].Labels[metadata.KeyNetem]; got != `{"delay":"20ms","loss":"0.5%"}` {
		t.Fatalf("ratchet.netem = %q, want the impairment, normalised", got)
	}
}
