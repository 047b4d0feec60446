package agent

import (
	"context"
	"errors"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/pairing"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// CNI error codes the agent gives.
const (
	codeInvalidConfig uint = 7
	codeTryAgainLater uint = 11
	codeInternal      uint = 999
)

// toAPIError gives a pairing error its CNI code, the agent side's one
// place for codes (the plugin relays them):
//   - 7 (invalid config): a netconf error, invalid metadata, a configuration
//     that cannot work here, a link that conflicts with another or with an
//     interface ratchet does not own, a vxlan MTU the parent cannot carry;
//   - 11 (try again later): etcd or a metadata source unreachable, a
//     deadline passed;
//   - anything else is 999.
func toAPIError(err error) *agentapi.Error {
	var cerr *config.Error
	var merr *metadata.Error
	code := codeInternal
	switch {
	case errors.As(err, &cerr), errors.As(err, &merr), errors.Is(err, pairing.ErrBadConfig),
		errors.Is(err, pairing.ErrConflict), errors.Is(err, store.ErrEndTaken),
		errors.Is(err, store.ErrAPINotServed), errors.Is(err, store.ErrAuth), errors.Is(err, wiring.ErrMTU):
		code = codeInvalidConfig
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, metadata.ErrSourceUnavailable),
		errors.Is(err, context.DeadlineExceeded):
		code = codeTryAgainLater
	}
	return &agentapi.Error{Code: code, Msg: err.Error()}
}
