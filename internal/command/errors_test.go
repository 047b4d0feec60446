package command

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/delegation"
)

func TestToCNIErrorGivesEachKindItsCode(t *testing.T) {
	delegateErr := types.NewError(types.ErrTryAgainLater, "no lease", "dhcp timed out")
	for _, tc := range []struct {
		name        string
		err         error
		code        uint
		msgHas      []string
		wantDetails string
	}{
		{
			name:   "config error is 7 and names the field",
			err:    &config.Error{Field: "etcd.api", Msg: `"v4" is not "v2" or "v3"`},
			code:   types.ErrInvalidNetworkConfig,
			msgHas: []string{"etcd.api", `"v4"`},
		},
		{
			name:   "wrapped config error is 7",
			err:    fmt.Errorf("load: %w", &config.Error{Field: "delegates[1].type", Msg: "missing plugin type"}),
			code:   types.ErrInvalidNetworkConfig,
			msgHas: []string{"delegates[1].type"},
		},
		{
			name:   "coded error keeps its code",
			err:    &codedErr{types.ErrTryAgainLater, errors.New("etcd unavailable")},
			code:   types.ErrTryAgainLater,
			msgHas: []string{"etcd unavailable"},
		},
		{
			name:   "wrapped coded error keeps its code",
			err:    fmt.Errorf("pod default/a: %w", &codedErr{types.ErrInvalidNetworkConfig, errors.New("ratchet.local_ip: bad")}),
			code:   types.ErrInvalidNetworkConfig,
			msgHas: []string{"pod default/a: ", "ratchet.local_ip"},
		},
		{
			name:        "delegate's CNI error keeps code and details under ratchet's context",
			err:         &delegation.Error{Index: 1, Type: "ptp", IfName: "net1", Op: "ADD", Err: delegateErr},
			code:        types.ErrTryAgainLater,
			msgHas:      []string{"delegate 1 (ptp on net1) ADD: ", "no lease"},
			wantDetails: "dhcp timed out",
		},
		{
			name:        "joined delegate errors keep the first delegate's code",
			err:         errors.Join(&delegation.Error{Index: 2, Type: "macvlan", IfName: "net2", Op: "DEL", Err: delegateErr}, errors.New("other")),
			code:        types.ErrTryAgainLater,
			msgHas:      []string{"delegate 2 (macvlan on net2) DEL", "other"},
			wantDetails: "dhcp timed out",
		},
		{
			name:   "delegate's plain error is internal",
			err:    &delegation.Error{Index: 0, Type: "bridge", IfName: "eth0", Op: "ADD", Err: errors.New("exec: not found")},
			code:   types.ErrInternal,
			msgHas: []string{"delegate 0 (bridge on eth0) ADD: exec: not found"},
		},
		{
			name:   "plain error is 999",
			err:    errors.New("something broke"),
			code:   types.ErrInternal,
			msgHas: []string{"something broke"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := toCNIError(tc.err)
			if got.Code != tc.code {
				t.Errorf("code = %d, want %d (%v)", got.Code, tc.code, got)
			}
			for _, s := range tc.msgHas {
				if !strings.Contains(got.Msg, s) {
					t.Errorf("msg %q does not contain %q", got.Msg, s)
				}
			}
			if got.Details != tc.wantDetails {
				t.Errorf("details = %q, want %q", got.Details, tc.wantDetails)
			}
		})
	}
}

func TestAgentErrorKeepsTheAgentsCode(t *testing.T) {
	err := fmt.Errorf("pairing: %w", &agentapi.Error{Code: types.ErrTryAgainLater, Msg: "record pod: etcd unavailable"})
	if got := toCNIError(err); got.Code != types.ErrTryAgainLater || !strings.Contains(got.Msg, "etcd unavailable") {
		t.Fatalf("toCNIError = %d %q, want the agent's 11", got.Code, got.Msg)
	}
}

// codedErr is an error of a lower package that knows its CNI code.
type codedErr struct {
	code uint
	err  error
}

func (e *codedErr) Error() string { return e.err.Error() }
func (e *codedErr) CNICode() uint { return e.code }
func (e *codedErr) Unwrap() error { return e.err }

var _ Coded = (*codedErr)(nil)

// STATUS answers 50 (not available) where ADD would answer 11, and keeps
// other codes.
func TestStatusErrorIsNotAvailable(t *testing.T) {
	down := &agentapi.Error{Code: types.ErrTryAgainLater, Msg: "etcd: unavailable at http://127.0.0.1:2379"}
	if got := toCNIError(statusError(down)); got.Code != types.ErrPluginNotAvailable || !strings.Contains(got.Msg, "etcd") {
		t.Fatalf("STATUS with etcd down = %d %q, want 50 naming etcd", got.Code, got.Msg)
	}
	bad := &agentapi.Error{Code: types.ErrInvalidNetworkConfig, Msg: "etcd.api"}
	if got := toCNIError(statusError(bad)); got.Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("STATUS with a config error = %d, want 7", got.Code)
	}
}
