package metadata

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/netem"
)

// netemSeeds are impairment objects, valid and not, for the fuzzers.
var netemSeeds = []string{
	`{}`,
	`null`,
	`{"delay":"20ms","jitter":"5ms","loss":"0.5%","rate":"100mbit","corrupt":"0.1%","duplicate":"1%","reorder":"25%"}`,
	`{"delay":"250us","rate":"1.5MBPS"}`,
	`{"delay":"1µs"}`,
	`{"loss":"150%"}`,
	`{"jitter":"5ms"}`,
	`{"lossy":"1%"}`,
	`{"loss":1}`,
	`{"loss":""}`,
	`"1%"`,
	`{} {}`,
}

// entry is a ratchet.links value with one link b whose fields follow.
func entry(fields string) string {
	return `[{"peer":"b","ifname":"x","peer_ifname":"y"` + fields + `}]`
}

func TestParseNetemValid(t *testing.T) {
	full := netem.Spec{Delay: "20ms", Jitter: "5ms", Loss: "0.5%", Rate: "100mbit", Corrupt: "0.1%", Duplicate: "1%", Reorder: "25%"}
	loss := &netem.Spec{Loss: "1%"}
	delay := &netem.Spec{Delay: "10ms"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		link   func(*Pod) Link
		want   [3]*netem.Spec // Netem, LocalNetem, PeerNetem
	}{
		{"links netem, every field", with(primaryLabels(), KeyLinks, entry(`,"netem":{"delay":"20ms","jitter":"5ms","loss":"0.5%","rate":"100mbit","corrupt":"0.1%","duplicate":"1%","reorder":"25%"}`)),
			second, [3]*netem.Spec{&full}},
		{"links local and peer", with(primaryLabels(), KeyLinks, entry(`,"local_netem":{"delay":"10ms"},"peer_netem":{"loss":"1%"}`)),
			second, [3]*netem.Spec{nil, delay, loss}},
		{"links all three", with(primaryLabels(), KeyLinks, entry(`,"netem":{"loss":"1%"},"local_netem":{"delay":"10ms"}`)),
			second, [3]*netem.Spec{loss, delay}},
		{"links empty object is none", with(primaryLabels(), KeyLinks, entry(`,"netem":{},"local_netem":null,"peer_netem":{"loss":""}`)),
			second, [3]*netem.Spec{}},
		{"seed netem on the primary link", with(primaryLabels(), KeyNetem, `{"loss":"1%"}`), first, [3]*netem.Spec{loss}},
		{"seed netem with spaces", with(primaryLabels(), KeyNetem, " {\"loss\" : \"1%\"}\n"), first, [3]*netem.Spec{loss}},
		{"seed netem on the expected link", with(pairLabels(), KeyNetem, `{"delay":"10ms"}`),
			func(p *Pod) Link { return p.Expects[0] }, [3]*netem.Spec{delay}},
		{"seed netem empty", with(primaryLabels(), KeyNetem, `{}`), first, [3]*netem.Spec{}},
		{"seed netem empty without a link", map[string]string{KeyRatchet: "true", KeyPodName: "a", KeyNetem: `{}`},
			func(p *Pod) Link { return Link{} }, [3]*netem.Spec{}},
		{"both-direction units", with(primaryLabels(), KeyNetem, `{"delay":"1.5s","rate":"512kbps"}`), first,
			[3]*netem.Spec{{Delay: "1.5s", Rate: "512kbps"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.labels, master)
			if err != nil {
				t.Fatal(err)
			}
			l := tc.link(p)
			if got := [3]*netem.Spec{l.Netem, l.LocalNetem, l.PeerNetem}; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("netem, local_netem, peer_netem = %v, want %v", specs(got), specs(tc.want))
			}
			checkValidPod(t, p)
			checkRoundTrip(t, p)
		})
	}
}

func first(p *Pod) Link  { return p.Links[0] }
func second(p *Pod) Link { return p.Links[1] }

// specs formats impairments for a message.
func specs(s [3]*netem.Spec) []string {
	var out []string
	for _, x := range s {
		if x == nil {
			out = append(out, "nil")
		} else {
			out = append(out, marshalNetem(x))
		}
	}
	return out
}

func TestParseNetemInvalidNamesTheField(t *testing.T) {
	type tc struct {
		name    string
		labels  map[string]string
		key     string
		message string // a substring of Error()
	}
	bad := []struct{ field, value, reason string }{
		{"delay", "20", "want a duration"},
		{"delay", "61s", "above the maximum"},
		{"delay", "1.0001ms", "finer than a microsecond"},
		{"jitter", "5 ms", "want a duration"},
		{"loss", "150%", "above 100%"},
		{"loss", "0.5", "want a percentage"},
		{"loss", "0.00001%", "want a percentage"},
		{"rate", "100", "want a rate"},
		{"rate", "100mbits", "want a rate"},
		{"rate", "1bit", "outside 8bit to 100gbit"},
		{"rate", "1.0001bit", "outside"},
		{"rate", "101gbit", "outside"},
		{"rate", "8.5bit", "not a whole number"},
		{"corrupt", "-1%", "want a percentage"},
		{"duplicate", "1000%", "want a percentage"},
		{"reorder", "x", "want a percentage"},
		{"loss", strings.Repeat("1", 40) + "%", "longer than 32 bytes"},
	}
	var cases []tc
	for _, b := range bad {
		obj := `{"` + b.field + `":"` + b.value + `"}`
		if b.field == "jitter" || b.field == "reorder" {
			obj = `{"delay":"1ms","` + b.field + `":"` + b.value + `"}`
		}
		for _, in := range []struct{ key, fields string }{
			{"netem", `,"netem":` + obj},
			{"local_netem", `,"local_netem":` + obj},
			{"peer_netem", `,"peer_netem":` + obj},
		} {
			key := "ratchet.links[0]." + in.key + "." + b.field
			cases = append(cases, tc{in.key + " " + b.field + " " + b.value, with(primaryLabels(), KeyLinks, entry(in.fields)),
				key, key + `: "` + Clip(b.value, maxValueInMessage) + `": ` + b.reason})
		}
		cases = append(cases, tc{"seed " + b.field + " " + b.value, with(primaryLabels(), KeyNetem, obj),
			KeyNetem + "." + b.field, KeyNetem + "." + b.field + `: "` + b.value + `": ` + b.reason})
	}
	cases = append(cases, []tc{
		{"jitter without delay", with(primaryLabels(), KeyLinks, entry(`,"netem":{"jitter":"5ms"}`)),
			"ratchet.links[0].netem.jitter", `ratchet.links[0].netem.jitter: "5ms": needs netem.delay`},
		{"reorder without delay", with(primaryLabels(), KeyNetem, `{"reorder":"5%","loss":"1%"}`),
			"ratchet.netem.reorder", `ratchet.netem.reorder: "5%": needs netem.delay`},
		{"first bad field is named", with(primaryLabels(), KeyLinks, entry(`,"local_netem":{"rate":"x","loss":"200%"}`)),
			"ratchet.links[0].local_netem.loss", "above 100%"},
		{"unknown key in netem", with(primaryLabels(), KeyLinks, entry(`,"netem":{"lossy":"1%"}`)),
			"ratchet.links[0].netem", `unknown field "lossy"`},
		{"unknown key in local_netem", with(primaryLabels(), KeyLinks, entry(`,"local_netem":{"delay":"1ms","limit":1000}`)),
			"ratchet.links[0].local_netem", `unknown field "limit"`},
		{"unknown key in peer_netem", with(primaryLabels(), KeyLinks, entry(`,"peer_netem":{"Loss ":"1%"}`)),
			"ratchet.links[0].peer_netem", `unknown field "Loss "`},
		{"unknown key in seed netem", with(primaryLabels(), KeyNetem, `{"gap":"5"}`), KeyNetem, `unknown field "gap"`},
		{"netem field not a string", with(primaryLabels(), KeyLinks, entry(`,"netem":{"loss":1}`)),
			"ratchet.links[0].netem.loss", "a JSON number, want a string"},
		{"seed netem field not a string", with(primaryLabels(), KeyNetem, `{"delay":["1ms"]}`), "ratchet.netem.delay", "a JSON array"},
		{"netem not an object", with(primaryLabels(), KeyLinks, entry(`,"netem":"1%"`)), "ratchet.links[0].netem", "not an impairment"},
		{"netem an array", with(primaryLabels(), KeyLinks, entry(`,"peer_netem":[]`)), "ratchet.links[0].peer_netem", "not an impairment"},
		{"seed netem not JSON", with(primaryLabels(), KeyNetem, `loss=1%`), KeyNetem, "not an impairment"},
		{"seed netem trailing data", with(primaryLabels(), KeyNetem, `{"loss":"1%"} x`), KeyNetem, "data after the JSON object"},
		{"seed netem two objects", with(primaryLabels(), KeyNetem, `{}{}`), KeyNetem, "data after the JSON object"},
		{"seed netem too long", with(primaryLabels(), KeyNetem, `{"loss":"1%"}`+strings.Repeat(" ", MaxNetemLen)), KeyNetem, "more than the limit of 1024"},
		{"seed netem without a link", map[string]string{KeyRatchet: "true", KeyPodName: "a", KeyNetem: `{"loss":"1%"}`},
			KeyPairName, "required with ratchet.netem"},
		{"link errors come first", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"eth0","netem":{"loss":"x"}}]`),
			"ratchet.links[0].peer_ifname", "master"},
		{"later entry named", with(primaryLabels(), KeyLinks, `[{"peer":"b","ifname":"x","peer_ifname":"y","netem":{}},{"peer":"c","ifname":"z","peer_ifname":"y","peer_netem":{"duplicate":"x"}}]`),
			"ratchet.links[1].peer_netem.duplicate", `"x": want a percentage`},
	}...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse(c.labels, master)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse = %+v, %v; want an *Error", p, err)
			}
			if e.Key != c.key {
				t.Errorf("key = %q, want %q (error %v)", e.Key, c.key, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, c.key+": ") || !strings.Contains(msg, c.message) || len(msg) > 400 {
				t.Errorf("error %.400q does not start with %q and say %q (briefly)", msg, c.key+": ", c.message)
			}
		})
	}
}

// Labels writes an impairment the pair keys cannot say exactly to
// ratchet.links, and never one the labels would misstate.
func TestLabelsOfImpairedLinks(t *testing.T) {
	loss, delay := &netem.Spec{Loss: "1%"}, &netem.Spec{Delay: "10ms"}
	link := seedPrimaryPod.Links[0]
	withNetem := func(both, local, peer *netem.Spec) Link {
		l := link
		l.Netem, l.LocalNetem, l.PeerNetem = both, local, peer
		return l
	}
	for _, tc := range []struct {
		name          string
		pod           Pod
		netem, links  string // the values of ratchet.netem, ratchet.links ("" absent)
		parsedExpects []Link // nil: the pod round-trips
	}{
		{"primary, both ends", Pod{Name: "a", Primary: true, Links: []Link{withNetem(loss, nil, nil)}}, `{"loss":"1%"}`, "", nil},
		{"primary, one end", Pod{Name: "a", Primary: true, Links: []Link{withNetem(nil, delay, nil)}}, "",
			`[{"peer":"pair-pod","ifname":"in1","ip":"192.168.2.100/24","peer_ifname":"in2","peer_ip":"192.168.2.101/24","local_netem":{"delay":"10ms"}}]`, nil},
		{"primary, both and peer", Pod{Name: "a", Primary: true, Links: []Link{withNetem(loss, nil, delay)}}, "",
			`[{"peer":"pair-pod","ifname":"in1","ip":"192.168.2.100/24","peer_ifname":"in2","peer_ip":"192.168.2.101/24","netem":{"loss":"1%"},"peer_netem":{"delay":"10ms"}}]`, nil},
		{"expected, both ends", Pod{Name: "a", Expects: []Link{withNetem(loss, nil, nil)}}, `{"loss":"1%"}`, "", nil},
		{"expected, one end: left out", Pod{Name: "a", Expects: []Link{withNetem(loss, delay, nil)}}, "", "",
			[]Link{withNetem(nil, nil, nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.pod.Namespace = DefaultNamespace
			labels := Labels(&tc.pod)
			if labels[KeyNetem] != tc.netem || labels[KeyLinks] != tc.links {
				t.Fatalf("ratchet.netem = %q, ratchet.links = %q\nwant %q, %q", labels[KeyNetem], labels[KeyLinks], tc.netem, tc.links)
			}
			if tc.parsedExpects == nil {
				checkRoundTrip(t, &tc.pod)
				return
			}
			p, err := Parse(labels, master)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Expects, tc.parsedExpects) {
				t.Fatalf("expects %+v, want %+v", p.Expects, tc.parsedExpects)
			}
		})
	}
}
