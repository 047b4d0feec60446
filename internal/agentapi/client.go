package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Client calls the agent on its unix socket.
type Client struct {
	// Socket is the agent's socket path.
	Socket string
	// Timeout bounds each call that has no earlier deadline.
	Timeout time.Duration
	http    *http.Client
}

// NewClient returns a client of the agent at socket; a call without an
// earlier deadline is bounded by timeout.
func NewClient(socket string, timeout time.Duration) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	return &Client{Socket: socket, Timeout: timeout, http: &http.Client{Transport: tr}}
}

// errNotListening marks a call that found no agent: the socket is missing
// or nobody listens on it. Such a call may start one and try again.
var errNotListening = errors.New("agent not listening")

// IsNotListening reports whether err says that no agent listens.
func IsNotListening(err error) bool { return errors.Is(err, errNotListening) }

// Call posts req to the agent's path and decodes its answer into ans. An
// agent's error comes back as *Error; no agent listening as an error for
// which IsNotListening holds; anything else as an Unreachable *Error.
func (c *Client) Call(ctx context.Context, path string, req, ans any) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://ratchetd"+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hreq)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w: %s: %w", errNotListening, c.Socket, err)
		}
		return Unreachable(c.Socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return Unreachable(c.Socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{}
		if json.Unmarshal(data, e) != nil || e.Code == 0 {
			return &Error{Code: CodeInternal, Msg: fmt.Sprintf("agent answered %s: %s", resp.Status, data)}
		}
		return e
	}
	if ans == nil {
		return nil
	}
	if err := json.Unmarshal(data, ans); err != nil {
		return &Error{Code: CodeInternal, Msg: fmt.Sprintf("decode agent answer: %v", err)}
	}
	return nil
}
