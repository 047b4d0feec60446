package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/delegation"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/pairing"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// Coded is implemented by errors that know their CNI error code. Packages
// below the command layer implement it on their own error types instead of
// building *types.Error themselves.
type Coded interface {
	error
	CNICode() uint
}

// toCNIError turns any error into a *types.Error with the right code, the
// one place where codes are given:
//   - 7 (invalid config): a netconf error, invalid metadata, a configuration
//     that cannot work here, a link that conflicts with another or with an
//     interface ratchet does not own, a vxlan MTU the parent cannot carry;
//   - 11 (try again later): etcd or a metadata source unreachable, a
//     deadline passed;
//   - a Coded error keeps its code, a delegate's own CNI error keeps its
//     code (with ratchet's context in the message); anything else is 999.
func toCNIError(err error) *types.Error {
	if code, ok := pairingCode(err); ok {
		return types.NewError(code, err.Error(), "")
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
		}
		return types.NewError(terr.Code, msg, terr.Details)
	}
	if errors.As(err, &terr) {
		return types.NewError(terr.Code, err.Error(), terr.Details)
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}

// pairingCode gives the code of the errors of configuration and pairing.
func pairingCode(err error) (uint, bool) {
	var cerr *config.Error
	var merr *metadata.Error
	switch {
	case errors.As(err, &cerr), errors.As(err, &merr), errors.Is(err, pairing.ErrBadConfig),
		errors.Is(err, pairing.ErrConflict), errors.Is(err, store.ErrEndTaken),
		errors.Is(err, store.ErrAPINotServed), errors.Is(err, store.ErrAuth), errors.Is(err, wiring.ErrMTU):
		return types.ErrInvalidNetworkConfig, true
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, metadata.ErrSourceUnavailable),
		errors.Is(err, context.DeadlineExceeded):
		return types.ErrTryAgainLater, true
	}
	return 0, false
}
