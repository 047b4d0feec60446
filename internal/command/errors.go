package command

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/delegation"
)

// Coded is implemented by errors that know their CNI error code. Packages
// below the command layer implement it on their own error types instead of
// building *types.Error themselves.
type Coded interface {
	error
	CNICode() uint
}

// toCNIError turns any error into a *types.Error with the right code, the
// plugin's one place where codes are given:
//   - 7 (invalid config): a netconf error;
//   - a Coded error (the agent's answers) keeps its code, a delegate's own
//     CNI error keeps its code (with ratchet's context in the message);
//     anything else is 999.
func toCNIError(err error) *types.Error {
	var cerr *config.Error
	if errors.As(err, &cerr) {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	var coded Coded
	if errors.As(err, &coded) {
		return types.NewError(coded.CNICode(), err.Error(), "")
	}
	var derr *delegation.Error
	var terr *types.Error
	if errors.As(err, &derr) && errors.As(derr.Err, &terr) {
		msg := err.Error()
		if err == error(derr) {
			// One delegate failed: its details go in Details, not twice.
			msg = fmt.Sprintf("delegate %d (%s on %s) %s: %s", derr.Index, derr.Type, derr.IfName, derr.Op, terr.Msg)
			if derr.Plugin != "" {
				msg = fmt.Sprintf("delegate %d (%s on %s) %s: %s: %s", derr.Index, derr.Type, derr.IfName, derr.Op, derr.Plugin, terr.Msg)
			}
		}
		return types.NewError(terr.Code, msg, terr.Details)
	}
	if errors.As(err, &terr) {
		return types.NewError(terr.Code, err.Error(), terr.Details)
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}

// notAvailable is STATUS's answer when the agent or etcd cannot be
// reached: code 50, the plugin cannot serve ADDs of ratchet pods now.
type notAvailable struct{ err error }

func (e notAvailable) Error() string { return e.err.Error() }
func (e notAvailable) Unwrap() error { return e.err }

// CNICode is 50 (plugin not available).
func (e notAvailable) CNICode() uint { return types.ErrPluginNotAvailable }

// statusError gives a failed STATUS its code: what ADD would answer with
// "try again later" (11: agent or etcd unreachable) is "not available"
// (50) for STATUS; any other error keeps its code.
func statusError(err error) error {
	var coded Coded
	if errors.As(err, &coded) && coded.CNICode() == types.ErrTryAgainLater {
		return notAvailable{fmt.Errorf("ratchet pods cannot be added now: %w", err)}
	}
	return err
}
