package metadata

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/netem"
)

// FuzzParse feeds Parse arbitrary values of every key. Parse must not panic;
// its errors are *Error; what it accepts is valid and round-trips through
// Labels.
func FuzzParse(f *testing.F) {
	p, q := primaryLabels(), pairLabels()
	add := func(m map[string]string) {
		f.Add(m[KeyPodName], m[KeyNamespace], m[KeyPrimary], m[KeyLocalIfName], m[KeyLocalIP],
			m[KeyPairName], m[KeyPairIfName], m[KeyPairIP], m[KeyLinks], m[KeyPublicIP], m[KeyNetem])
	}
	add(p)
	add(q)
	add(with(p, KeyLinks, `[{"peer":"b","ifname":"mid1","ip":"192.168.3.1/24","peer_ifname":"mid2","peer_ip":"192.168.3.2/24","mtu":1500}]`))
	add(with(p, KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"y","mtu":9000},{"peer":"c","ifname":"z","peer_ifname":"y","ip":"2001:db8::1"}]`))
	add(with(p, KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"y","vni":1}]`))
	add(with(p, KeyLinks, `[null, 5, "x", {}]`))
	add(with(q, KeyNamespace, "lab", KeyLocalIP, "fe80::1%eth0", KeyPublicIP, "::ffff:1.2.3.4"))
	add(with(p, KeyLocalIfName, "in 1", KeyPairIP, "300.1.1.1", KeyPrimary, "yes"))
	add(map[string]string{KeyPodName: "a", KeyLinks: `[{"peer":"b","ifname":"x","peer_ifname":"y","mtu":1e3}]`})
	for _, c := range netemSeeds {
		add(with(p, KeyNetem, c))
		add(with(q, KeyNetem, c))
		add(with(p, KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"y","netem":`+c+`}]`))
		add(with(p, KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"y","local_netem":`+c+`,"peer_netem":{"loss":"1%"}}]`))
	}
	add(with(p, KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"y","netem":{"rate":"1gbit"},"local_netem":{},"peer_netem":null}]`))
	add(map[string]string{KeyPodName: "a", KeyNetem: `{"delay":"1ms"}`})
	f.Fuzz(func(t *testing.T, name, ns, primary, localIf, localIP, pairName, pairIf, pairIP, links, publicIP, netemSpec string) {
		labels := map[string]string{
			KeyRatchet: "true", KeyPodName: name, KeyNamespace: ns, KeyPrimary: primary,
			KeyLocalIfName: localIf, KeyLocalIP: localIP, KeyPairName: pairName,
			KeyPairIfName: pairIf, KeyPairIP: pairIP, KeyLinks: links, KeyPublicIP: publicIP,
			KeyNetem: netemSpec,
		}
		pod, err := Parse(labels, master)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Key == "" || e.Reason == "" {
				t.Fatalf("Parse error %v (%T) is not a complete *Error", err, err)
			}
			return
		}
		if pod == nil {
			t.Fatal("Parse returned nil, nil for ratchet=true")
		}
		checkValidPod(t, pod)
		checkRoundTrip(t, pod)
	})
}

// checkValidPod asserts the invariants of a Pod that Parse returned.
func checkValidPod(t *testing.T, p *Pod) {
	t.Helper()
	if checkDNSLabel(p.Name) != "" || checkDNSLabel(p.Namespace) != "" {
		t.Fatalf("invalid name %q or namespace %q accepted", p.Name, p.Namespace)
	}
	local := map[string]bool{}
	for _, l := range append(append([]Link{}, p.Links...), p.Expects...) {
		if checkDNSLabel(l.Peer) != "" || l.Peer == p.Name {
			t.Fatalf("invalid peer %q accepted", l.Peer)
		}
		for _, n := range []string{l.IfName, l.PeerIfName} {
			if n != "" && checkIfName(n, []string{master}) != "" {
				t.Fatalf("invalid ifname %q accepted", n)
			}
		}
		if l.IfName != "" && local[l.IfName] {
			t.Fatalf("ifname %q used twice", l.IfName)
		}
		local[l.IfName] = true
		for _, ip := range []string{l.IP, l.PeerIP} {
			if _, err := netip.ParsePrefix(ip); ip != "" && err != nil {
				t.Fatalf("IP %q is not a CIDR: %v", ip, err)
			}
		}
		if l.MTU != 0 && (l.MTU < MinMTU || l.MTU > MaxMTU) {
			t.Fatalf("MTU %d accepted", l.MTU)
		}
		for _, s := range []*netem.Spec{l.Netem, l.LocalNetem, l.PeerNetem} {
			if s != nil && (s.IsZero() || s.Validate() != nil) {
				t.Fatalf("impairment %+v accepted (a zero one must be nil)", *s)
			}
		}
	}
	for _, l := range p.Links {
		if l.IfName == "" || l.PeerIfName == "" {
			t.Fatalf("declared link without interface names: %+v", l)
		}
	}
}

// checkRoundTrip asserts Parse(Labels(p)) == p.
func checkRoundTrip(t *testing.T, p *Pod) {
	t.Helper()
	labels := Labels(p)
	again, err := Parse(labels, master)
	if err != nil {
		t.Fatalf("Parse(Labels(%+v)) = %v\nlabels %v", p, err, labels)
	}
	if !reflect.DeepEqual(again, p) {
		t.Fatalf("round trip changed the pod\n got %+v\nwant %+v\nlabels %v", again, p, labels)
	}
}

func TestLabelsRoundTrip(t *testing.T) {
	links := `[{"peer":"b","ifname":"mid1","ip":"192.168.3.1/24","peer_ifname":"mid2","peer_ip":"192.168.3.2/24","mtu":1500}]`
	for name, labels := range map[string]map[string]string{
		"primary":                 primaryLabels(),
		"pair":                    pairLabels(),
		"primary with links":      with(primaryLabels(), KeyLinks, links),
		"pair with links":         with(pairLabels(), KeyLinks, links),
		"links only, primary":     {KeyRatchet: "true", KeyPodName: "a", KeyPrimary: "true", KeyLinks: links},
		"links only, not primary": {KeyRatchet: "true", KeyPodName: "a", KeyLinks: links},
		"bare pod":                {KeyRatchet: "true", KeyPodName: "a", KeyNamespace: "ns"},
		"IPv6":                    with(primaryLabels(), KeyLocalIP, "2001:db8::1", KeyPairIP, "2001:db8::2/127"),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parse(labels, master)
			if err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, p)
		})
	}
}

func TestLabelsWritesSeedKeys(t *testing.T) {
	got := Labels(seedPrimaryPod)
	want := with(primaryLabels(), KeyNamespace, "default",
		KeyLocalIP, "192.168.2.100/24", KeyPairIP, "192.168.2.101/24")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Labels = %v\nwant     %v", got, want)
	}
	if Labels(nil) != nil {
		t.Fatal("Labels(nil) != nil")
	}
	if l := Labels(&Pod{Name: "a"}); l[KeyNamespace] != DefaultNamespace || strings.Contains(l[KeyLinks], "null") {
		t.Fatalf("Labels of a bare pod = %v", l)
	}
}
