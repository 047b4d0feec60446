package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
)

// How long an agent waits for the one it replaces to exit.
const (
	// residentClaimWait bounds a resident agent's take-over: the start
	// lock (plugins hold it while they start an agent, up to their own
	// wait), then the old agent's exit (its in-flight requests finish
	// first, up to shutdownWait).
	residentClaimWait = 60 * time.Second
	// onDemandClaimWait bounds an on-demand agent's wait for an agent that
	// is exiting (it must stay below the plugin's wait for its socket).
	onDemandClaimWait = 8 * time.Second
	// shutdownWait bounds the in-flight requests at exit.
	shutdownWait = 10 * time.Second
)

// claimSocket makes this agent the only one of its socket and returns the
// socket's listener and the release of the agent's life lock
// (agentapi.LifeLockPath), which the caller holds until everything else
// has stopped.
//
// At most one agent per socket runs at a time: each holds the life lock
// while it runs. A resident agent (a DaemonSet's, not on demand) that finds
// an agent alive takes over: under the start lock, so that no plugin
// starts an on-demand agent meanwhile, it asks the old agent to hand over
// (an on-demand agent stops serving, lets its in-flight requests finish and
// exits; a resident one refuses, and is waited for: it is being stopped,
// as an old DaemonSet pod is) and waits for its life lock. Plugins calling
// meanwhile find no agent listening, wait for the start lock and then find
// this one. The links stay: the new agent adopts them as after any restart.
// An on-demand agent only waits for an exiting agent's life lock.
func (a *Agent) claimSocket(ctx context.Context) (net.Listener, func(), error) {
	socket := a.opts.Socket
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return nil, nil, fmt.Errorf("socket directory: %w", err)
	}
	wait := onDemandClaimWait
	if !a.opts.OnDemand {
		wait = residentClaimWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if !a.opts.OnDemand {
		unlockStart, err := agentapi.LockFile(ctx, agentapi.StartLockPath(socket))
		if err != nil {
			return nil, nil, fmt.Errorf("take the socket over: %w", err)
		}
		defer unlockStart() // once this agent listens
	}
	now, cancelNow := context.WithCancel(ctx)
	cancelNow() // one try
	release, err := agentapi.LockFile(now, agentapi.LifeLockPath(socket))
	if err != nil {
		if !a.opts.OnDemand {
			a.askHandover(ctx)
		}
		start := time.Now()
		if release, err = agentapi.LockFile(ctx, agentapi.LifeLockPath(socket)); err != nil {
			return nil, nil, fmt.Errorf("another agent of %s does not exit: %w", socket, err)
		}
		a.log.Info("took the socket over", "socket", socket, "waited", time.Since(start))
	}
	ln, err := listen(socket)
	if err != nil {
		release()
		return nil, nil, err
	}
	return ln, release, nil
}

// askHandover asks the agent on the socket to hand it over, and logs what
// it answers.
func (a *Agent) askHandover(ctx context.Context) {
	client := agentapi.NewClient(a.opts.Socket, 5*time.Second)
	var ans agentapi.Answer
	err := client.Call(ctx, agentapi.PathHandover, struct{}{}, &ans)
	var aerr *agentapi.Error
	switch {
	case err == nil && ans.Agent != nil:
		a.log.Info("an on-demand agent hands the socket over", "oldPID", ans.Agent.PID, "version", ans.Agent.Version)
	case err == nil:
		a.log.Info("an agent hands the socket over")
	case agentapi.IsNotListening(err):
		a.log.Info("waiting for an exiting agent", "socket", a.opts.Socket)
	case errors.As(err, &aerr):
		a.log.Warn("waiting for the agent that holds the socket", "socket", a.opts.Socket, "answer", aerr.Msg)
	default:
		a.log.Warn("waiting for the agent that holds the socket", "socket", a.opts.Socket, "err", err)
	}
}

// handover answers a resident agent that takes the socket over: an
// on-demand agent stops (Run's context ends; in-flight requests finish
// first), a resident one refuses.
func (a *Agent) handover(_ context.Context, log *slog.Logger, _ []byte) (agentapi.Answer, error) {
	if !a.opts.OnDemand {
		return agentapi.Answer{}, &agentapi.Error{Code: codeInternal, Msg: "a resident agent does not hand its socket over; stop it instead"}
	}
	log.Info("a resident agent takes the socket over; exiting")
	a.stop()
	return agentapi.Answer{Agent: a.info()}, nil
}
