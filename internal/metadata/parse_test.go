package metadata

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const master = "eth0"

// primaryLabels are the seed's primary.label.
func primaryLabels() map[string]string {
	return map[string]string{
		"ratchet":                  "true",
		"ratchet.pod_name":         "primary-pod",
		"ratchet.target_pod":       "primary-pod",
		"ratchet.target_container": "primary-pod",
		"ratchet.public_ip":        "1.1.1.1",
		"ratchet.local_ip":         "192.168.2.100",
		"ratchet.local_ifname":     "in1",
		"ratchet.pair_name":        "pair-pod",
		"ratchet.pair_ip":          "192.168.2.101",
		"ratchet.pair_ifname":      "in2",
		"ratchet.primary":          "true",
	}
}

// pairLabels are the peer side of primaryLabels.
func pairLabels() map[string]string {
	return map[string]string{
		"ratchet":              "true",
		"ratchet.pod_name":     "pair-pod",
		"ratchet.local_ip":     "192.168.2.101",
		"ratchet.local_ifname": "in2",
		"ratchet.pair_name":    "primary-pod",
		"ratchet.pair_ip":      "192.168.2.100",
		"ratchet.pair_ifname":  "in1",
		"ratchet.primary":      "false",
	}
}

var seedPrimaryPod = &Pod{
	Name: "primary-pod", Namespace: "default", Primary: true,
	Links:     []Link{{Peer: "pair-pod", IfName: "in1", IP: "192.168.2.100/24", PeerIfName: "in2", PeerIP: "192.168.2.101/24"}},
	TargetPod: "primary-pod", TargetContainer: "primary-pod", PublicIP: "1.1.1.1",
}

var seedPairPod = &Pod{
	Name: "pair-pod", Namespace: "default",
	Expects: []Link{{Peer: "primary-pod", IfName: "in2", IP: "192.168.2.101/24", PeerIfName: "in1", PeerIP: "192.168.2.100/24"}},
}

// with returns a copy of m with the key/value pairs set; a value of "<del>"
// deletes the key.
func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<del>" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

func TestParseSeedLabels(t *testing.T) {
	for name, tc := range map[string]struct {
		labels map[string]string
		want   *Pod
	}{
		"primary": {primaryLabels(), seedPrimaryPod},
		"pair":    {pairLabels(), seedPairPod},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.labels, master)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse = %+v\nwant    %+v", got, tc.want)
			}
		})
	}
}

func TestParseNotARatchetPodIsNil(t *testing.T) {
	for _, labels := range []map[string]string{
		nil,
		{},
		with(primaryLabels(), "ratchet", "<del>"),
		with(primaryLabels(), "ratchet", "True"),
		with(primaryLabels(), "ratchet", "yes"),
		with(primaryLabels(), "ratchet", ""),
		{"ratchet": "false", "ratchet.local_ip": "garbage"},
	} {
		p, err := Parse(labels, master)
		if p != nil || err != nil {
			t.Errorf("Parse(%v) = %+v, %v; want nil, nil", labels, p, err)
		}
	}
}

func TestParseValid(t *testing.T) {
	links := `[{"peer":"b","ifname":"mid1","ip":"192.168.3.1/24","peer_ifname":"mid2","peer_ip":"192.168.3.2/24","mtu":1500}]`
	linkB := Link{Peer: "b", IfName: "mid1", IP: "192.168.3.1/24", PeerIfName: "mid2", PeerIP: "192.168.3.2/24", MTU: 1500}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		check  func(*Pod) bool
	}{
		{"namespace defaults", primaryLabels(), func(p *Pod) bool { return p.Namespace == "default" }},
		{"namespace kept", with(primaryLabels(), KeyNamespace, "lab-1"), func(p *Pod) bool { return p.Namespace == "lab-1" }},
		{"primary defaults to false", with(pairLabels(), KeyPrimary, "<del>"), func(p *Pod) bool { return !p.Primary && len(p.Expects) == 1 }},
		{"CIDR kept with host address", with(primaryLabels(), KeyLocalIP, "10.1.2.3/16"), func(p *Pod) bool { return p.Links[0].IP == "10.1.2.3/16" }},
		{"bare IPv6 gets /64", with(primaryLabels(), KeyLocalIP, "2001:db8::1", KeyPairIP, "2001:db8::2"), func(p *Pod) bool { return p.Links[0].IP == "2001:db8::1/64" }},
		{"IPv6 CIDR", with(primaryLabels(), KeyLocalIP, "2001:db8::3/127", KeyPairIP, "2001:DB8::2/127"), func(p *Pod) bool { return p.Links[0].PeerIP == "2001:db8::2/127" }},
		{"no addresses", with(primaryLabels(), KeyLocalIP, "<del>", KeyPairIP, "<del>"), func(p *Pod) bool { return p.Links[0].IP == "" && p.Links[0].PeerIP == "" }},
		{"links follow the primary link", with(primaryLabels(), KeyLinks, links), func(p *Pod) bool { return len(p.Links) == 2 && p.Links[1] == linkB }},
		{"links only", map[string]string{"ratchet": "true", KeyPodName: "a", KeyLinks: links}, func(p *Pod) bool { return len(p.Links) == 1 && p.Links[0] == linkB && !p.Primary }},
		{"links of a non-primary pod with expects", with(pairLabels(), KeyLinks, links), func(p *Pod) bool { return len(p.Links) == 1 && len(p.Expects) == 1 }},
		{"empty links array", with(primaryLabels(), KeyLinks, "[]"), func(p *Pod) bool { return len(p.Links) == 1 }},
		{"null links", with(primaryLabels(), KeyLinks, "null"), func(p *Pod) bool { return len(p.Links) == 1 }},
		{"mtu bounds", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"y","mtu":68},{"peer":"c","ifname":"z","peer_ifname":"y","mtu":65535}]`), func(p *Pod) bool { return len(p.Links) == 3 }},
		{"same peer ifname on different peers", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"in2"}]`), func(p *Pod) bool { return len(p.Links) == 2 }},
		{"expects without ifnames", map[string]string{"ratchet": "true", KeyPodName: "a", KeyPairName: "b"}, func(p *Pod) bool { return p.Expects[0] == Link{Peer: "b"} }},
		{"15-char ifname", with(primaryLabels(), KeyLocalIfName, "abcdefghijklmno"), func(p *Pod) bool { return p.Links[0].IfName == "abcdefghijklmno" }},
		{"63-char pod name", with(primaryLabels(), KeyPodName, strings.Repeat("a", 63)), func(p *Pod) bool { return len(p.Name) == 63 }},
		{"public IPv6", with(primaryLabels(), KeyPublicIP, "2001:DB8::1"), func(p *Pod) bool { return p.PublicIP == "2001:db8::1" }},
		{"empty values are absent", with(pairLabels(), KeyNamespace, "", KeyPrimary, "", KeyPublicIP, "", KeyLinks, ""), func(p *Pod) bool { return p.Namespace == "default" && !p.Primary }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.labels, master)
			if err != nil {
				t.Fatal(err)
			}
			if p == nil || !tc.check(p) {
				t.Fatalf("Parse = %+v", p)
			}
		})
	}
}

func TestParseMasterNameIsTheCallers(t *testing.T) {
	labels := with(primaryLabels(), KeyLocalIfName, "eth0")
	if _, err := Parse(labels, "net0"); err != nil {
		t.Fatalf("eth0 with master net0: %v", err)
	}
	var e *Error
	if _, err := Parse(with(primaryLabels(), KeyLocalIfName, "net0"), "net0"); !errors.As(err, &e) || e.Key != KeyLocalIfName {
		t.Fatalf("net0 with master net0: %v", err)
	}
}

func TestParseInvalidNamesTheKey(t *testing.T) {
	long := strings.Repeat("a", 64)
	link := func(fields string) string { return `[{"peer":"b","ifname":"x","peer_ifname":"y"` + fields + `}]` }
	for _, tc := range []struct {
		name    string
		labels  map[string]string
		key     string
		message string // a substring of Error()
	}{
		{"missing pod name", with(primaryLabels(), KeyPodName, "<del>"), KeyPodName, "required"},
		{"uppercase pod name", with(primaryLabels(), KeyPodName, "Primary"), KeyPodName, "DNS label"},
		{"pod name too long", with(primaryLabels(), KeyPodName, long), KeyPodName, "DNS label"},
		{"pod name with dot", with(primaryLabels(), KeyPodName, "a.b"), KeyPodName, "DNS label"},
		{"pod name starting with dash", with(primaryLabels(), KeyPodName, "-a"), KeyPodName, "DNS label"},
		{"pod name ending with dash", with(primaryLabels(), KeyPodName, "a-"), KeyPodName, "DNS label"},
		{"bad namespace", with(primaryLabels(), KeyNamespace, "kube_system"), KeyNamespace, "DNS label"},
		{"primary yes", with(primaryLabels(), KeyPrimary, "yes"), KeyPrimary, `"yes": must be "true" or "false"`},
		{"primary True", with(primaryLabels(), KeyPrimary, "True"), KeyPrimary, "must be"},
		{"bad local IP", with(primaryLabels(), KeyLocalIP, "300.1.1.1"), KeyLocalIP, `ratchet.local_ip: "300.1.1.1": not an IP address or CIDR`},
		{"bad pair IP", with(primaryLabels(), KeyPairIP, "192.168.2.101/33"), KeyPairIP, "not an IP"},
		{"IP with zone", with(primaryLabels(), KeyLocalIP, "fe80::1%eth0"), KeyLocalIP, "not an IP"},
		{"unspecified IP", with(primaryLabels(), KeyLocalIP, "0.0.0.0"), KeyLocalIP, "unicast"},
		{"multicast IP", with(primaryLabels(), KeyLocalIP, "224.0.0.1/24"), KeyLocalIP, "unicast"},
		{"bad public IP", with(primaryLabels(), KeyPublicIP, "1.1.1.1/24"), KeyPublicIP, "not an IP address"},
		{"ifname too long", with(primaryLabels(), KeyLocalIfName, "abcdefghijklmnop"), KeyLocalIfName, "longer than 15"},
		{"ifname with slash", with(primaryLabels(), KeyLocalIfName, "in/1"), KeyLocalIfName, "'/'"},
		{"ifname with colon", with(primaryLabels(), KeyPairIfName, "in:1"), KeyPairIfName, "':'"},
		{"ifname with space", with(primaryLabels(), KeyLocalIfName, "in 1"), KeyLocalIfName, "whitespace"},
		{"ifname with tab", with(primaryLabels(), KeyLocalIfName, "in\t1"), KeyLocalIfName, "whitespace"},
		{"ifname dot", with(primaryLabels(), KeyLocalIfName, ".."), KeyLocalIfName, "not a valid"},
		{"ifname is master", with(primaryLabels(), KeyLocalIfName, "eth0"), KeyLocalIfName, "master interface eth0"},
		{"pair ifname is master", with(primaryLabels(), KeyPairIfName, "eth0"), KeyPairIfName, "master interface"},
		{"ifname is lo", with(primaryLabels(), KeyLocalIfName, "lo"), KeyLocalIfName, "loopback"},
		{"expects on master", with(pairLabels(), KeyLocalIfName, "eth0"), KeyLocalIfName, "master"},
		{"primary without pair name", with(primaryLabels(), KeyPairName, "<del>"), KeyPairName, "required with"},
		{"primary without local ifname", with(primaryLabels(), KeyLocalIfName, "<del>"), KeyLocalIfName, "required with"},
		{"primary without pair ifname", with(primaryLabels(), KeyPairIfName, "<del>"), KeyPairIfName, "required with"},
		{"non-primary with local keys but no pair name", with(pairLabels(), KeyPairName, "<del>"), KeyPairName, "required with"},
		{"link to itself", with(primaryLabels(), KeyPairName, "primary-pod"), KeyPairName, "itself"},
		{"peer not a DNS label", with(primaryLabels(), KeyPairName, "Pair_Pod"), KeyPairName, "DNS label"},
		{"links not JSON", with(primaryLabels(), KeyLinks, "mid1"), KeyLinks, "not a JSON array"},
		{"links an object", with(primaryLabels(), KeyLinks, `{"peer":"b"}`), KeyLinks, "not a JSON array"},
		{"links trailing garbage", with(primaryLabels(), KeyLinks, `[]x`), KeyLinks, "not a JSON array"},
		{"links unknown field", with(primaryLabels(), KeyLinks, link(`,"vni":5`)), "ratchet.links[0]", `unknown field "vni"`},
		{"links wrong type", with(primaryLabels(), KeyLinks, link(`,"mtu":"1500"`)), "ratchet.links[0]", "not a link"},
		{"links entry not an object", with(primaryLabels(), KeyLinks, `[5]`), "ratchet.links[0]", "not a link"},
		{"links entry null", with(primaryLabels(), KeyLinks, `[null]`), "ratchet.links[0].peer", "required"},
		{"links missing ifname", with(primaryLabels(), KeyLinks, `[{"peer":"b","peer_ifname":"y"}]`), "ratchet.links[0].ifname", "required"},
		{"links missing peer ifname", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"y"}]`), "ratchet.links[0].peer_ifname", "required"},
		{"links bad peer", with(primaryLabels(), KeyLinks, `[{"peer":"B","ifname":"x","peer_ifname":"y"}]`), "ratchet.links[0].peer", "DNS label"},
		{"links to itself", with(primaryLabels(), KeyLinks, `[{"peer":"primary-pod","ifname":"x","peer_ifname":"y"}]`), "ratchet.links[0].peer", "itself"},
		{"links bad IP", with(primaryLabels(), KeyLinks, link(`,"ip":"1.2.3"`)), "ratchet.links[0].ip", "not an IP"},
		{"links bad peer IP", with(primaryLabels(), KeyLinks, link(`,"peer_ip":"x"`)), "ratchet.links[0].peer_ip", "not an IP"},
		{"links MTU too small", with(primaryLabels(), KeyLinks, link(`,"mtu":67`)), "ratchet.links[0].mtu", "68..65535"},
		{"links MTU too big", with(primaryLabels(), KeyLinks, link(`,"mtu":65536`)), "ratchet.links[0].mtu", "68..65535"},
		{"links MTU negative", with(primaryLabels(), KeyLinks, link(`,"mtu":-1`)), "ratchet.links[0].mtu", "68..65535"},
		{"links ifname on master", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"eth0","peer_ifname":"y"}]`), "ratchet.links[0].ifname", "master"},
		{"links ifname clashes with primary link", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"in1","peer_ifname":"y"}]`), "ratchet.links[0].ifname", "already used by ratchet.local_ifname"},
		{"two links on one name", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"y"},{"peer":"c","ifname":"z","peer_ifname":"y"},{"peer":"d","ifname":"x","peer_ifname":"y"}]`), "ratchet.links[2].ifname", "already used by ratchet.links[0].ifname"},
		{"links clash with expects", with(pairLabels(), KeyLinks, `[{"peer":"b","ifname":"in2","peer_ifname":"y"}]`), "ratchet.links[0].ifname", "already used by ratchet.local_ifname"},
		{"two links on one peer ifname", with(primaryLabels(), KeyLinks, `[{"peer":"pair-pod","ifname":"x","peer_ifname":"in2"}]`), "ratchet.links[0].peer_ifname", "already used by ratchet.pair_ifname"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.labels, master)
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", p)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if e.Key != tc.key {
				t.Errorf("key = %q, want %q (error %v)", e.Key, tc.key, err)
			}
			if !strings.Contains(err.Error(), tc.message) || !strings.HasPrefix(err.Error(), tc.key+": ") {
				t.Errorf("error %q does not start with %q and say %q", err, tc.key+": ", tc.message)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Key: KeyLocalIP, Value: "300.1.1.1", Reason: "not an IP address or CIDR"}, `ratchet.local_ip: "300.1.1.1": not an IP address or CIDR`},
		{&Error{Key: KeyPodName, Reason: "required"}, `ratchet.pod_name: required`},
		{&Error{Key: KeyLinks, Value: strings.Repeat("x", 100), Reason: "r"}, `ratchet.links: "` + strings.Repeat("x", 80) + `...": r`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
