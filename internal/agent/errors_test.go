package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/pairing"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

func TestToAPIErrorGivesPairingCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code uint
	}{
		{"etcd unavailable", fmt.Errorf("record pod: %w", store.ErrUnavailable), codeTryAgainLater},
		{"metadata source unavailable", metadata.Unavailable("docker at unix:///x", errors.New("refused")), codeTryAgainLater},
		{"deadline", fmt.Errorf("pair: %w", context.DeadlineExceeded), codeTryAgainLater},
		{"invalid metadata", &metadata.Error{Key: "ratchet.local_ip", Value: "x", Reason: "not an IP"}, codeInvalidConfig},
		{"wrapped invalid metadata", fmt.Errorf("pod a: %w", &metadata.Error{Key: "ratchet.links"}), codeInvalidConfig},
		{"bad configuration", fmt.Errorf("etcd: %w: bad CA", pairing.ErrBadConfig), codeInvalidConfig},
		{"API not served", fmt.Errorf("etcd: %w", store.ErrAPINotServed), codeInvalidConfig},
		{"conflicting declarations", fmt.Errorf("link x: %w", pairing.ErrConflict), codeInvalidConfig},
		{"end taken", fmt.Errorf("link x: %w", &store.EndConflict{Pod: "p", IfName: "in1", Owner: "a.x--p.in1"}), codeInvalidConfig},
		{"anything else", errors.New("netlink: busy"), codeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := toAPIError(tc.err)
			if got.Code != tc.code || got.Msg != tc.err.Error() {
				t.Fatalf("toAPIError(%v) = %d %q, want code %d and the message kept", tc.err, got.Code, got.Msg, tc.code)
			}
		})
	}
}

// A vxlan MTU above what the parent carries is bad configuration (code 7
// naming mtu), though only the wiring can know it.
func TestVxlanMTUAboveParentIsCode7NamingMTU(t *testing.T) {
	err := fmt.Errorf("wire link in1 of default/a: vxlan in1: mtu 9000 above the maximum 1450: %w", wiring.ErrMTU)
	got := toAPIError(err)
	if got.Code != codeInvalidConfig || !strings.Contains(got.Msg, "mtu") {
		t.Errorf("toAPIError = %d %q, want code 7 naming mtu", got.Code, got.Msg)
	}
}
