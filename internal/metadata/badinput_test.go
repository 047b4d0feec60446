package metadata

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// badInputCase is one entry of the table of issue 10's items 5, 6 and 11:
// labels that must be refused naming key.
type badInputCase struct {
	name, key string
	labels    map[string]string
}

// linksOf is a ratchet.links value with one link whose fields follow.
func linksOf(fields string) string {
	return `[{"peer":"b","ifname":"x1","peer_ifname":"y1"` + fields + `}]`
}

func badInputCases() []badInputCase {
	mb := strings.Repeat("a", 1<<20)
	many := "[" + strings.Repeat(`{"peer":"b","ifname":"x","peer_ifname":"y"},`, MaxLinks) + `{"peer":"b","ifname":"x","peer_ifname":"y"}]`
	return []badInputCase{
		// Item 5: '%' is expanded by the kernel.
		{"percent in local ifname", KeyLocalIfName, with(primaryLabels(), KeyLocalIfName, "x%d")},
		{"percent in pair ifname", KeyPairIfName, with(primaryLabels(), KeyPairIfName, "in%")},
		{"percent in links ifname", "ratchet.links[0].ifname", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"m%d","peer_ifname":"y"}]`)},
		{"percent in links peer ifname", "ratchet.links[0].peer_ifname", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"m","peer_ifname":"%"}]`)},
		{"kernel whitespace byte 0xA0", KeyLocalIfName, with(primaryLabels(), KeyLocalIfName, "in\u00a0")},
		// Item 6: addresses the wiring refuses, and wired nonsense.
		{"loopback", KeyLocalIP, with(primaryLabels(), KeyLocalIP, "127.0.0.1/8")},
		{"IPv4-mapped IPv6", KeyLocalIP, with(primaryLabels(), KeyLocalIP, "::ffff:192.0.2.1")},
		{"limited broadcast", KeyPairIP, with(primaryLabels(), KeyPairIP, "255.255.255.255/32")},
		{"zero prefix", KeyLocalIP, with(primaryLabels(), KeyLocalIP, "192.0.2.1/0")},
		{"IPv6 zero prefix", KeyLocalIP, with(primaryLabels(), KeyLocalIP, "2001:db8::1/0", KeyPairIP, "2001:db8::2/64")},
		{"network address", KeyLocalIP, with(primaryLabels(), KeyLocalIP, "192.0.2.0/24")},
		{"broadcast address", KeyPairIP, with(primaryLabels(), KeyPairIP, "192.0.2.255/24")},
		{"bare network address", KeyLocalIP, with(primaryLabels(), KeyLocalIP, "192.0.2.0")},
		{"same address on both ends", KeyPairIP, with(primaryLabels(), KeyLocalIP, "192.0.2.1/24", KeyPairIP, "192.0.2.1/24")},
		{"same address, other prefix", KeyPairIP, with(primaryLabels(), KeyLocalIP, "192.0.2.1/24", KeyPairIP, "192.0.2.1/30")},
		{"families differ", KeyPairIP, with(primaryLabels(), KeyLocalIP, "192.0.2.1/24", KeyPairIP, "2001:db8::2/64")},
		{"expects same address", KeyPairIP, with(pairLabels(), KeyLocalIP, "192.0.2.9", KeyPairIP, "192.0.2.9")},
		{"multicast", KeyLocalIP, with(primaryLabels(), KeyLocalIP, "ff02::1/64")},
		{"unspecified IPv6", KeyPairIP, with(primaryLabels(), KeyPairIP, "::/64")},
		{"MTU 100 with IPv6", "ratchet.links[0].mtu", with(primaryLabels(), KeyLinks, linksOf(`,"ip":"2001:db8::1/64","peer_ip":"2001:db8::2/64","mtu":100`))},
		{"MTU 1279 with IPv6 peer only", "ratchet.links[0].mtu", with(primaryLabels(), KeyLinks, linksOf(`,"peer_ip":"2001:db8::2/64","mtu":1279`))},
		{"links loopback", "ratchet.links[0].ip", with(primaryLabels(), KeyLinks, linksOf(`,"ip":"127.0.0.2/8"`))},
		{"links same address", "ratchet.links[0].peer_ip", with(primaryLabels(), KeyLinks, linksOf(`,"ip":"10.1.0.1/30","peer_ip":"10.1.0.1/30"`))},
		// Item 11: sizes.
		{"1 MB target pod", KeyTargetPod, with(primaryLabels(), KeyTargetPod, mb)},
		{"two 1 MB kept keys", KeyTargetPod, with(primaryLabels(), KeyTargetPod, mb, KeyTargetContainer, mb)},
		{"long target container", KeyTargetContainer, with(primaryLabels(), KeyTargetContainer, strings.Repeat("c", MaxKeptLen+1))},
		{"long public IP", KeyPublicIP, with(primaryLabels(), KeyPublicIP, strings.Repeat("1", MaxKeptLen+1))},
		{"too many links", KeyLinks, with(primaryLabels(), KeyLinks, many)},
		{"links too long", KeyLinks, with(primaryLabels(), KeyLinks, "["+strings.Repeat(" ", MaxLinksLen)+"]")},
		{"1 MB pod name", KeyPodName, with(primaryLabels(), KeyPodName, mb)},
		{"1 MB pair name", KeyPairName, with(primaryLabels(), KeyPairName, mb)},
		{"1 MB namespace", KeyNamespace, with(primaryLabels(), KeyNamespace, mb)},
		{"1 MB ifname", KeyLocalIfName, with(primaryLabels(), KeyLocalIfName, mb)},
		{"1 MB address", KeyLocalIP, with(primaryLabels(), KeyLocalIP, mb)},
	}
}

func TestParseRefusesWhatTheKernelWouldRefuseOrAlter(t *testing.T) {
	for _, tc := range badInputCases() {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.labels, master)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse = %+v, %v; want an *Error naming %s", p, err, tc.key)
			}
			if e.Key != tc.key {
				t.Errorf("key = %q, want %q (error %v)", e.Key, tc.key, err)
			}
			if msg := err.Error(); len(msg) > 400 || !strings.HasPrefix(msg, tc.key+": ") {
				t.Errorf("error %.400q: want a short message starting with %q", msg, tc.key)
			}
		})
	}
}

func TestParseAcceptsEdgeAddresses(t *testing.T) {
	for _, l := range []map[string]string{
		with(primaryLabels(), KeyLocalIP, "192.0.2.0/31", KeyPairIP, "192.0.2.1/31"),
		with(primaryLabels(), KeyLocalIP, "192.0.2.7/32", KeyPairIP, "192.0.2.8/32"),
		with(primaryLabels(), KeyLocalIP, "fe80::1/64", KeyPairIP, "fe80::2/64"),
		with(primaryLabels(), KeyLocalIP, "169.254.0.1/16", KeyPairIP, "169.254.0.2/16"),
		with(primaryLabels(), KeyLinks, linksOf(`,"ip":"2001:db8::1/64","mtu":1280`)),
		with(primaryLabels(), KeyLinks, linksOf(`,"ip":"192.0.2.1/24","mtu":100`)),
		with(primaryLabels(), KeyTargetPod, strings.Repeat("t", MaxKeptLen)),
	} {
		if _, err := Parse(l, master); err != nil {
			t.Errorf("Parse: %v", err)
		}
	}
}

func TestErrorCutsValuesOnCharacterBoundaries(t *testing.T) {
	for n := 0; n < 4; n++ {
		value := strings.Repeat("x", n) + strings.Repeat("€", 100)
		msg := (&Error{Key: KeyTargetPod, Value: value, Reason: "r"}).Error()
		if !utf8.ValidString(msg) || strings.Contains(msg, `\x`) {
			t.Errorf("offset %d: message %q cuts a character", n, msg)
		}
	}
}

func TestClipKeepsWholeCharacters(t *testing.T) {
	for _, s := range []string{"", "abc", strings.Repeat("é", 50), "\xff\xfe" + strings.Repeat("€", 40)} {
		got := Clip(s, 10)
		if len(got) > 10+len("...") || (utf8.ValidString(s) && !utf8.ValidString(got)) {
			t.Errorf("Clip(%q, 10) = %q", s, got)
		}
	}
}
