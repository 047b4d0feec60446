package announce

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/metadata"
)

// What the announcer writes is bounded: a topology whose pod would carry
// more links, or a longer kept key, than the plugin accepts is refused,
// naming the field, before anything is written.
func TestTopologyBeyondTheMetadataLimitsIsRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("links:\n")
	for i := 0; i < metadata.MaxLinks+2; i++ { // the first link goes to the pair keys
		fmt.Fprintf(&b, "  - a: {pod: hub, ifname: h%d}\n    b: {pod: s%d, ifname: in1}\n", i, i)
	}
	long := "pods:\n  - name: x\n    target_pod: " + strings.Repeat("t", metadata.MaxKeptLen+1) + "\n"
	for name, tc := range map[string]struct{ src, field string }{
		"too many links": {b.String(), "ratchet.links"},
		"long kept key":  {long, "pods[0].target_pod"},
		"percent ifname": {"links:\n  - a: {pod: a, ifname: 'x%d'}\n    b: {pod: b, ifname: in1}\n", "links[0].a.ifname"},
	} {
		t.Run(name, func(t *testing.T) {
			topo, err := ParseTopology([]byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = topo.Records("eth0")
			if !IsInput(err) || !strings.Contains(err.Error(), tc.field+": ") || len(err.Error()) > 400 {
				t.Errorf("Records = %.400v, want a short InputError naming %s", err, tc.field)
			}
		})
	}
}
