// Package agentapi is the protocol between the thin ratchet plugin and the
// node agent ratchetd: JSON requests and answers over HTTP on a unix
// socket, a client with deadlines, and the on-demand start of the agent. It
// depends on the standard library only, because the plugin links it.
package agentapi

import (
	"github.com/ratchet-cni/ratchet/internal/statefile"

	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
)

// DefaultSocket is where the agent listens unless the netconf's
// agent.socket says otherwise.
const DefaultSocket = "/run/ratchet/ratchetd.sock"

// Paths of the agent's endpoints.
const (
	PathLookup = "/v1/lookup"
	PathAdd    = "/v1/add"
	PathDel    = "/v1/del"
	PathCheck  = "/v1/check"
	PathStatus = "/v1/status"
	PathGC     = "/v1/gc"
	PathPing   = "/v1/ping"
	// PathHandover asks an on-demand agent to stop serving and exit, so
	// that a resident agent (a DaemonSet's) can take its socket over; a
	// resident agent refuses.
	PathHandover = "/v1/handover"
)

// CNI error codes the client gives itself (the agent gives all others).
const (
	// CodeTryAgainLater is CNI's code 11.
	CodeTryAgainLater uint = 11
	// CodeInternal is CNI's code 999.
	CodeInternal uint = 999
)

// Request is one CNI call of a pod, as the plugin hands it to the agent.
type Request struct {
	ContainerID string `json:"containerID"`
	NetNS       string `json:"netns"`
	// IfName is CNI_IFNAME, the master delegate's interface.
	IfName string `json:"ifName"`
	// Args is CNI_ARGS.
	Args string `json:"args,omitempty"`
	// Netconf is the plugin's netconf as the runtime gave it.
	Netconf json.RawMessage `json:"netconf"`
	// Reserved are the interface names of the delegates (eth0, net1, …).
	Reserved []string `json:"reserved,omitempty"`
}

// Attachment is one valid attachment of a GC call.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// GCRequest is a GC call: the netconf and the attachments still valid.
type GCRequest struct {
	Netconf json.RawMessage `json:"netconf"`
	Valid   []Attachment    `json:"valid"`
}

// StatusRequest is a STATUS call.
type StatusRequest struct {
	Netconf json.RawMessage `json:"netconf"`
}

// Answer is the agent's successful answer.
type Answer struct {
	// Ratchet: the pod is a ratchet pod (lookup).
	Ratchet bool `json:"ratchet,omitempty"`
	// Pending counts the links left for the agent to wire later (ADD).
	Pending int `json:"pending,omitempty"`
	// Agent describes the agent (STATUS, ping).
	Agent *Info `json:"agent,omitempty"`
}

// Info describes a running agent.
type Info struct {
	Host    string `json:"host"`
	Version string `json:"version"`
	PID     int    `json:"pid"`
	// Started is RFC 3339.
	Started  string `json:"started"`
	OnDemand bool   `json:"onDemand,omitempty"`
}

// Error is a failed call as a CNI error: the agent gives the code, the
// plugin relays it.
type Error struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
	cause   error
}

// ErrUnreachable: the call did not reach an agent (none listens and none
// could be started, or the connection broke).
var ErrUnreachable = errors.New("agent unreachable")

// Unwrap returns ErrUnreachable for an Unreachable error.
func (e *Error) Unwrap() error { return e.cause }

// Error returns the message.
func (e *Error) Error() string { return e.Msg }

// CNICode returns the CNI error code.
func (e *Error) CNICode() uint { return e.Code }

// Unreachable is the error of a call that could not reach the agent: code
// 11, naming the socket.
func Unreachable(socket string, err error) *Error {
	return &Error{Code: CodeTryAgainLater, Msg: fmt.Sprintf("ratchet agent at %s unreachable: %v", socket, err), cause: ErrUnreachable}
}

// PodState is what a host remembers of a ratchet pod's container (in
// StatePath), so that DEL knows the pod's link ends without etcd or the
// agent. The agent writes it; the plugin reads it when the agent is down.
type PodState struct {
	ContainerID string `json:"containerID"`
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	NetNS       string `json:"netns"`
	// NetnsInode identifies the netns NetNS named at ADD.
	NetnsInode uint64 `json:"netnsInode,omitempty"`
	// IfNames are the pod's own link ends known from its metadata.
	IfNames []string `json:"ifnames,omitempty"`
}

// StateDir is the directory of the pod states under cniDir.
func StateDir(cniDir string) string { return filepath.Join(cniDir, "pairing") }

// StatePath is the pod state file of a container under cniDir.
func StatePath(cniDir, containerID string) string {
	return filepath.Join(StateDir(cniDir), containerID+".json")
}

// TombstonePath is where the plugin's DEL without the agent leaves a
// container's pod state, for the agent to finish (its records).
func TombstonePath(cniDir, containerID string) string {
	return filepath.Join(StateDir(cniDir), containerID+TombstoneSuffix)
}

// TombstoneSuffix ends the name of a tombstone in StateDir.
const TombstoneSuffix = ".del"

// ReadState reads a pod state (or tombstone) file.
func ReadState(path string) (PodState, error) {
	var st PodState
	data, err := statefile.ReadFile(path) // never through a planted link
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("pod state %s: %w", path, err)
	}
	if st.Name == "" {
		return st, fmt.Errorf("pod state %s names no pod", path)
	}
	return st, nil
}
