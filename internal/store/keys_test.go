package store_test

import (
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
)

func TestKeysSchema(t *testing.T) {
	for _, prefix := range []string{"/ratchet", "ratchet", "/ratchet/", "ratchet//"} {
		k := store.Keys{Prefix: prefix}
		for got, want := range map[string]string{
			k.Pod("default", "a"):                    "/ratchet/pods/default/a",
			k.Pods("default"):                        "/ratchet/pods/default",
			k.Pods(""):                               "/ratchet/pods",
			k.Link("ns", "a.in1--b.in2"):             "/ratchet/links/ns/a.in1--b.in2",
			k.Links("ns"):                            "/ratchet/links/ns",
			k.Links(""):                              "/ratchet/links",
			k.VNI(4096):                              "/ratchet/vni/4096",
			k.VNIs():                                 "/ratchet/vni",
			k.Agent("a"):                             "/ratchet/agents/a",
			k.Agents():                               "/ratchet/agents",
			k.Announce("ns", "a"):                    "/ratchet/announce/ns/a",
			k.Announces("ns"):                        "/ratchet/announce/ns",
			store.Keys{}.Pod("default", "a"):         "/pods/default/a",
			store.Keys{Prefix: "/"}.VNI(1):           "/vni/1",
			store.Keys{Prefix: "/a/b"}.Pods("") + "": "/a/b/pods",
		} {
			if got != want {
				t.Errorf("prefix %q: got %q, want %q", prefix, got, want)
			}
		}
	}
}

func TestLinkIDIsCanonical(t *testing.T) {
	tests := []struct {
		podA, ifA, podB, ifB, want string
	}{
		{"a", "in1", "b", "in2", "a.in1--b.in2"},
		{"b", "in2", "a", "in1", "a.in1--b.in2"},
		{"primary-pod", "in1", "pair-pod", "in2", "pair-pod.in2--primary-pod.in1"},
		{"r1", "eth0.100", "r2", "mid-1", "r1.eth0.100--r2.mid-1"},
		{"a--b", "x", "c", "y", "a%2D%2Db.x--c.y"},
		{"a", "x-", "b", "-y", "a.x%2D--b.%2Dy"},
		{"a.b", "x/y", "c", "100%", "a%2Eb.x%2Fy--c.100%25"},
		{"_a", "_x", "b", "y_z", "%5Fa.%5Fx--b.y_z"},
	}
	for _, tc := range tests {
		got := store.LinkID(tc.podA, tc.ifA, tc.podB, tc.ifB)
		if got != tc.want {
			t.Errorf("LinkID(%q, %q, %q, %q) = %q, want %q", tc.podA, tc.ifA, tc.podB, tc.ifB, got, tc.want)
		}
	}
}

func TestLinkIDSeparatesAmbiguousEnds(t *testing.T) {
	// Pairs of links that a naive "pod.if--pod.if" would give one ID.
	pairs := [][2][4]string{
		{{"a", "x--b.y", "c", "z"}, {"a", "x", "b.y--c", "z"}},
		{{"a", "x-", "b", "y"}, {"a", "x", "-b", "y"}},
		{{"a.b", "c", "d", "e"}, {"a", "b.c", "d", "e"}},
		{{"a", "x%2D", "b", "y"}, {"a", "x-", "b", "y"}},
	}
	for _, p := range pairs {
		x := store.LinkID(p[0][0], p[0][1], p[0][2], p[0][3])
		y := store.LinkID(p[1][0], p[1][1], p[1][2], p[1][3])
		if x == y {
			t.Errorf("%v and %v share the ID %q", p[0], p[1], x)
		}
	}
}

func FuzzLinkID(f *testing.F) {
	f.Add("a", "in1", "b", "in2")
	f.Add("a--b", "x-", "c.d", "_y/z%")
	f.Fuzz(func(t *testing.T, podA, ifA, podB, ifB string) {
		id := store.LinkID(podA, ifA, podB, ifB)
		if id != store.LinkID(podB, ifB, podA, ifA) {
			t.Fatalf("not symmetric: %q", id)
		}
		if err := store.CheckKey("", "/links/ns/"+id); err != nil {
			t.Fatalf("not a single valid key segment: %v", err)
		}
		if strings.Count(id, "--") != 1 {
			t.Fatalf("%q: want exactly one separator", id)
		}
	})
}
