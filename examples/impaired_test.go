package examples

import (
	"reflect"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/netem"
)

// The impaired-pair example holds to the examples' conventions, announces
// as the announcer would, and says what its comment says: the link's netem
// on both ends, client's own delay on its end.
func TestImpairedPairTopology(t *testing.T) {
	topo, err := parseTopology(readFile(t, "impaired-pair.topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Pods) != 2 || len(topo.Links) != 1 {
		t.Fatalf("%d pods, %d links; want a pair and one link", len(topo.Pods), len(topo.Links))
	}
	l := topo.Links[0]
	for _, c := range []struct {
		what      string
		got, want *netem.Spec
	}{
		{"links[0].netem", l.Netem, &netem.Spec{Loss: "1%", Rate: "100mbit"}},
		{"links[0].a.netem", l.A.Netem, &netem.Spec{Delay: "10ms"}},
		{"links[0].b.netem", l.B.Netem, nil},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %+v, want %+v", c.what, c.got, c.want)
		}
	}
	if l.A.Pod != "client" || l.B.Pod != "server" {
		t.Errorf("link from %s to %s, want client to server", l.A.Pod, l.B.Pod)
	}
}
