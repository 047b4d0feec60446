package command

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// A vxlan MTU above what the parent carries is bad configuration (code 7
// naming mtu), though only the wiring can know it.
func TestVxlanMTUAboveParentIsCode7NamingMTU(t *testing.T) {
	err := fmt.Errorf("wire link in1 of default/a: vxlan in1: mtu 9000 above the maximum 1450: %w", wiring.ErrMTU)
	got := toCNIError(err)
	if got.Code != types.ErrInvalidNetworkConfig || !strings.Contains(got.Msg, "mtu") {
		t.Errorf("toCNIError = %d %q, want code 7 naming mtu", got.Code, got.Msg)
	}
}
