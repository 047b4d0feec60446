package agentapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// AgentBinary is the agent's file name; the plugin starts the one beside
// itself.
const AgentBinary = "ratchetd"

// Starter starts an agent on demand when none listens: one per socket even
// when many plugins race (an flock next to the socket), detached in its own
// session with its standard streams on /dev/null.
type Starter struct {
	// Binary is the agent's path; empty means ratchetd beside this
	// executable.
	Binary string
	// Netconf is written (0600) to NetconfPath for the agent's --netconf.
	Netconf     []byte
	NetconfPath string
	// Wait bounds the wait for the lock and for the new agent's socket.
	Wait time.Duration
}

// StartLockPath is the lock that serializes starting an agent on socket:
// plugins hold it while they start one on demand, and a resident agent
// (not on demand) while it takes the socket over, so that no plugin starts
// an on-demand agent meanwhile.
func StartLockPath(socket string) string {
	return filepath.Join(filepath.Dir(socket), AgentBinary+".lock")
}

// LifeLockPath is the lock an agent holds for its whole life (the kernel
// releases it when the agent exits, also on SIGKILL): at most one agent per
// socket runs at a time.
func LifeLockPath(socket string) string { return socket + ".lock" }

// CallStarting is Call that, when no agent listens and s is not nil,
// starts one and calls again. If the agent it found or started stops
// listening before the call (it handed the socket over to a resident
// agent), it waits for the start lock and calls once more.
func (c *Client) CallStarting(ctx context.Context, s *Starter, path string, req, ans any) error {
	err := c.Call(ctx, path, req, ans)
	if !IsNotListening(err) {
		return err
	}
	if s == nil {
		return Unreachable(c.Socket, err)
	}
	for attempt := 1; ; attempt++ {
		if err := s.ensure(ctx, c); err != nil {
			return Unreachable(c.Socket, fmt.Errorf("no agent listens and starting one failed: %w", err))
		}
		err = c.Call(ctx, path, req, ans)
		if !IsNotListening(err) {
			return err
		}
		if attempt == 2 {
			return Unreachable(c.Socket, err)
		}
	}
}

// ensure starts an agent unless one listens, under the start lock.
func (s *Starter) ensure(ctx context.Context, c *Client) error {
	ctx, cancel := context.WithTimeout(ctx, s.Wait)
	defer cancel()
	if err := os.MkdirAll(filepath.Dir(c.Socket), 0o700); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	unlock, err := LockFile(ctx, StartLockPath(c.Socket))
	if err != nil {
		return err
	}
	defer unlock()
	if c.ping(ctx) == nil {
		return nil // another plugin started it meanwhile
	}
	exited, err := s.start(c.Socket)
	if err != nil {
		return err
	}
	return waitListening(ctx, c, exited)
}

// LockFile takes an exclusive flock on path (created 0600), trying until
// ctx ends (at least once, also with a context already done). The returned
// function releases it.
func LockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// start runs the agent detached. The channel receives its exit if it ends
// (it should not).
func (s *Starter) start(socket string) (<-chan error, error) {
	bin := s.Binary
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own binary: %w", err)
		}
		bin = filepath.Join(filepath.Dir(self), AgentBinary)
	}
	if err := os.MkdirAll(filepath.Dir(s.NetconfPath), 0o700); err != nil {
		return nil, fmt.Errorf("directory of the agent's netconf: %w", err)
	}
	if err := os.WriteFile(s.NetconfPath, s.Netconf, 0o600); err != nil {
		return nil, fmt.Errorf("write the agent's netconf: %w", err)
	}
	cmd := exec.Command(bin, "--on-demand", "--socket", socket, "--netconf", s.NetconfPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = withoutCNI(os.Environ())
	// Stdin, Stdout and Stderr stay nil: /dev/null, never the runtime's.
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, nil
}

// waitListening waits until the agent answers, it exits, or ctx ends.
func waitListening(ctx context.Context, c *Client, exited <-chan error) error {
	for {
		if c.ping(ctx) == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("agent exited at start: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("agent did not listen in time: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *Client) ping(ctx context.Context) error {
	return c.Call(ctx, PathPing, struct{}{}, nil)
}

// withoutCNI drops the CNI_ variables: the agent is no CNI call.
func withoutCNI(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CNI_") {
			out = append(out, kv)
		}
	}
	return out
}
