package announce

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// chainYAML returns the router chain's topology (testenv.RouterChainFile):
// centosa–quagga-a–quagga-b–centosb, each pod at end b of at most one link.
func chainYAML(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(testenv.RepoFile(testenv.RouterChainFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func mustRecords(t *testing.T, src string) []Record {
	t.Helper()
	topo, err := ParseTopology([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := topo.Records("eth0")
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestChainTopologyDeclaresAtEndAAndExpectsAtEndB(t *testing.T) {
	recs := mustRecords(t, chainYAML(t))
	var names []string
	pods := map[string]*metadata.Pod{}
	for _, r := range recs {
		names = append(names, r.Name)
		p, err := metadata.Parse(r.Labels, "eth0")
		if err != nil || p == nil {
			t.Fatalf("record of %s does not parse: %v", r, err)
		}
		if !reflect.DeepEqual(r.Labels, metadata.Labels(p)) {
			t.Errorf("record of %s is not metadata.Labels of itself: %v", r, r.Labels)
		}
		pods[r.Name] = p
	}
	if want := []string{"centosa", "quagga-a", "quagga-b", "centosb"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("records for %v, want %v", names, want)
	}
	want := map[string]*metadata.Pod{
		"centosa": {Name: "centosa", Namespace: "default", Primary: true, PublicIP: "1.1.1.1", Links: []metadata.Link{
			{Peer: "quagga-a", IfName: "in1", IP: "192.0.2.1/30", PeerIfName: "in1", PeerIP: "192.0.2.2/30"}}},
		"quagga-a": {Name: "quagga-a", Namespace: "default", Primary: true, Links: []metadata.Link{
			{Peer: "quagga-b", IfName: "in2", IP: "203.0.113.1/30", PeerIfName: "in1", PeerIP: "203.0.113.2/30", MTU: 1400}}},
		"quagga-b": {Name: "quagga-b", Namespace: "default", Primary: true, Links: []metadata.Link{
			{Peer: "centosb", IfName: "in2", IP: "192.0.2.5/30", PeerIfName: "in1", PeerIP: "192.0.2.6/30"}}},
		"centosb": {Name: "centosb", Namespace: "default", Expects: []metadata.Link{
			{Peer: "quagga-b", IfName: "in1", IP: "192.0.2.6/30", PeerIfName: "in2", PeerIP: "192.0.2.5/30"}}},
	}
	for name, w := range want {
		if !reflect.DeepEqual(pods[name], w) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, pods[name], w)
		}
	}
}

func TestBareAddressGetsTheDefaultPrefix(t *testing.T) {
	recs := mustRecords(t, `
links:
  - a: {pod: quagga-b, ifname: in2, ip: 192.0.2.5/30}
    b: {pod: centosb,  ifname: in1, ip: 192.0.2.6}
`)
	for _, r := range recs {
		p, err := metadata.Parse(r.Labels, "eth0")
		if err != nil || p == nil {
			t.Fatalf("record of %s does not parse: %v", r, err)
		}
		if p.Name == "centosb" && (len(p.Expects) != 1 || p.Expects[0].IP != "192.0.2.6/24") {
			t.Errorf("centosb expects %+v, want its bare 192.0.2.6 as 192.0.2.6/24", p.Expects)
		}
	}
}

func TestPodOwnLinksAndKeptKeys(t *testing.T) {
	recs := mustRecords(t, `
namespace: lab
pods:
  - name: r1
    target_pod: r1
    target_container: r1-c
    links:
      - {peer: r2, ifname: a, ip: 10.0.0.1/31, peer_ifname: b, peer_ip: 10.0.0.0/31}
      - {peer: r3, ifname: c, peer_ifname: d, mtu: 9000}
  - name: r3
    public_ip: "2001:db8::1"
`)
	if len(recs) != 3 || recs[0].Name != "r1" || recs[1].Name != "r2" || recs[2].Name != "r3" {
		t.Fatalf("records %v", recs)
	}
	r1 := recs[0].Labels
	if r1[metadata.KeyNamespace] != "lab" || r1[metadata.KeyTargetContainer] != "r1-c" || r1[metadata.KeyPairName] != "r2" ||
		!strings.Contains(r1[metadata.KeyLinks], `"mtu":9000`) {
		t.Errorf("r1 labels %v", r1)
	}
	if r3 := recs[2].Labels; r3[metadata.KeyPublicIP] != "2001:db8::1" || r3[metadata.KeyPairName] != "r1" || r3[metadata.KeyPrimary] != "false" {
		t.Errorf("r3 labels %v", r3)
	}
}

func TestBadTopologyNamesPodAndField(t *testing.T) {
	link := func(a, b string) string { return "links:\n  - a: {" + a + "}\n    b: {" + b + "}\n" }
	ok := "pod: x, ifname: in1, ip: 10.0.0.1/30"
	tests := []struct {
		name, src string
		want      []string
	}{
		{"empty", ``, []string{"pods, links", "names no pod"}},
		{"unknown key", "pods:\n  - name: x\n    colour: red\n", []string{"line 3", "colour"}},
		{"duplicate key", "pods:\n  - name: x\n    name: y\n", []string{"line 3", "name already set"}},
		{"not a mapping", "- a\n- b\n", []string{"yaml:"}},
		{"duplicate pod", "pods:\n  - name: x\n  - name: y\n  - name: x\n", []string{"pod default/x", "pods[2].name", "duplicate pod: also pods[0]"}},
		{"pod name", "pods:\n  - name: X_1\n", []string{"pods[0].name", "not a DNS label"}},
		{"namespace", "namespace: Lab\npods:\n  - name: x\n", []string{"namespace", `"Lab"`}},
		{"public ip", "pods:\n  - name: x\n    public_ip: nope\n", []string{"pod default/x", "pods[0].public_ip", "not an IP"}},
		{"missing b pod", link(ok, "ifname: in1"), []string{"links[0].b.pod", "required"}},
		{"bad a ip", link("pod: x, ifname: in1, ip: 300.1.1.1", "pod: y, ifname: in1"), []string{"pod default/x", "links[0].a.ip", "not an IP"}},
		{"b ifname too long", link(ok, "pod: y, ifname: a-very-long-ifname"), []string{"pod default/y", "links[0].b.ifname", "longer than 15"}},
		{"master clash", link("pod: x, ifname: eth0", "pod: y, ifname: in1"), []string{"pod default/x", "links[0].a.ifname", "master interface eth0"}},
		{"self link", link(ok, "pod: x, ifname: in2"), []string{"links[0].b.pod", "to itself"}},
		{"same address", link(ok, "pod: y, ifname: in1, ip: 10.0.0.1/30"), []string{"pod default/y", "links[0].b.ip", "same address as links[0].a.ip"}},
		{"families", link(ok, "pod: y, ifname: in1, ip: 2001:db8::2/64"), []string{"links[0].b.ip", "IP family"}},
		{"mtu", link(ok, "pod: y, ifname: in1") + "    mtu: 20\n", []string{"links[0].mtu", "MTU outside"}},
		{"ifname twice", link(ok, "pod: y, ifname: in1") + "  - a: {pod: z, ifname: in1}\n    b: {pod: y, ifname: in1}\n",
			[]string{"pod default/y", "links[1].b.ifname", "interface already used by links[0].b.ifname"}},
		{"link twice", link(ok, "pod: y, ifname: in1") + "  - a: {pod: y, ifname: in1}\n    b: {pod: x, ifname: in1}\n",
			[]string{"links[1].a.ifname", "already used by links[0].b.ifname"}},
		{"own link peer", "pods:\n  - name: x\n    links:\n      - {ifname: a, peer_ifname: b}\n", []string{"pods[0].links[0].peer", "required"}},
		{"own link clashes", "pods:\n  - name: x\n    links:\n      - {peer: y, ifname: in1, peer_ifname: b}\n" + link(ok, "pod: z, ifname: in1"),
			[]string{"pod default/x", "links[0].a.ifname", "already used by pods[0].links[0].ifname"}},
	}
	for _, tt := range tests {
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

func TestYAMLScalarsStayStrings(t *testing.T) {
	recs := mustRecords(t, "namespace: \"on\"\nlinks:\n  - a: {pod: no, ifname: 0755, ip: 10.0.0.1}\n    b: {pod: y, ifname: 1e3}\n")
	if len(recs) != 2 || recs[0].Name != "no" || recs[1].Name != "y" || recs[0].Namespace != "on" ||
		recs[0].Labels[metadata.KeyLocalIfName] != "0755" || recs[1].Labels[metadata.KeyLocalIfName] != "1e3" {
		t.Fatalf("records %+v", recs)
	}
}

func TestSelectNamesUnknownPod(t *testing.T) {
	recs := mustRecords(t, chainYAML(t))
	got, err := Select(recs, "quagga-b", "--pod-name/POD_NAME")
	if err != nil || len(got) != 1 || got[0].Name != "quagga-b" {
		t.Fatalf("Select quagga-b = %v, %v", got, err)
	}
	_, err = Select(recs, "quagga-c", "--pod-name/POD_NAME")
	if err == nil || !strings.Contains(err.Error(), `--pod-name/POD_NAME: "quagga-c": unknown pod`) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzTopology(f *testing.F) {
	f.Add([]byte(chainYAML(f)))
	f.Add([]byte("pods:\n  - name: x\n    links:\n      - {peer: y, ifname: a, peer_ifname: b, ip: 10.1.1.1}\n"))
	f.Add([]byte(`{"links":[{"a":{"pod":"a","ifname":"x"},"b":{"pod":"b","ifname":"y"},"mtu":1500}]}`))
	impaired, err := os.ReadFile(testenv.RepoFile(impairedPairFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(impaired)
	f.Add([]byte("links:\n  - a: {pod: x, ifname: a, netem: {delay: 1ms, jitter: 1us, reorder: 1%}}\n    b: {pod: y, ifname: b, netem: {}}\n    netem: {loss: 1%, rate: 1.5mbit, corrupt: 0.01%, duplicate: 100%}\n"))
	f.Add([]byte("pods:\n  - name: x\n    links:\n      - {peer: y, ifname: a, peer_ifname: b, netem: {loss: 150%}, local_netem: {rate: 8bit}, peer_netem: {delay: 60s}}\n"))
	f.Add([]byte("links:\n  - a: {pod: x, ifname: a}\n    b: {pod: y, ifname: b, netem: {lossy: 1%}}\n"))
	f.Add([]byte(`{"links":[{"a":{"pod":"a","ifname":"x","netem":{"delay":"5µs"}},"b":{"pod":"b","ifname":"y"},"netem":{"rate":"1kbps"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		topo, err := ParseTopology(data)
		if err != nil {
			return
		}
		recs, err := topo.Records("eth0")
		if err != nil {
			if !IsInput(err) {
				t.Fatalf("not an InputError: %v", err)
			}
			return
		}
		for _, r := range recs {
			if p, err := metadata.Parse(r.Labels, "eth0"); err != nil || p == nil || p.Name != r.Name {
				t.Fatalf("record %s does not parse back: %v", r, err)
			}
		}
	})
}
