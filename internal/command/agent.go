package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// agentStartWait bounds the on-demand start of an agent.
const agentStartWait = 10 * time.Second

// AgentPairer is the plugin's Pairer: the node agent does the pairing. When
// no agent listens, it starts one from the plugin's directory.
type AgentPairer struct {
	conf    *config.NetConf
	raw     []byte
	log     *slog.Logger
	client  *agentapi.Client
	starter *agentapi.Starter
}

// NewAgentPairer returns the Pairer of the netconf raw (conf, loaded); a
// netconf without metadata sources pairs nothing (nil).
func NewAgentPairer(conf *config.NetConf, raw []byte, log *slog.Logger) (Pairer, error) {
	if len(conf.Metadata) == 0 {
		return nil, nil // no metadata source: no pod can be a ratchet pod
	}
	timeout := 10*conf.Etcd.Timeout.D() + 60*time.Second
	return &AgentPairer{
		conf: conf, raw: raw, log: log,
		client: agentapi.NewClient(conf.Agent.Socket, timeout),
		starter: &agentapi.Starter{Netconf: raw, Wait: agentStartWait,
			NetconfPath: filepath.Join(filepath.Dir(conf.Agent.Socket), "ratchetd.netconf")},
	}, nil
}

// IsRatchet asks the agent whether the pod has ratchet metadata.
func (p *AgentPairer) IsRatchet(ctx context.Context, req *agentapi.Request) (bool, error) {
	var ans agentapi.Answer
	err := p.client.CallStarting(ctx, p.starter, agentapi.PathLookup, req, &ans)
	return ans.Ratchet, err
}

// Add asks the agent to pair the pod (it answers at once for a pod that is
// not a ratchet pod).
func (p *AgentPairer) Add(ctx context.Context, req *agentapi.Request) error {
	return p.client.CallStarting(ctx, p.starter, agentapi.PathAdd, req, nil)
}

// Del asks the agent to undo the pod's pairing. A container without pairing
// state on this host was never paired here: the agent is not asked. When
// no agent can be reached, the pod's link ends are removed here and the
// agent removes the records later.
func (p *AgentPairer) Del(ctx context.Context, req *agentapi.Request) error {
	path := agentapi.StatePath(p.conf.CNIDir, req.ContainerID)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	err := p.client.CallStarting(ctx, p.starter, agentapi.PathDel, req, nil)
	if !errors.Is(err, agentapi.ErrUnreachable) {
		return err
	}
	p.log.Warn("agent unreachable; removing the pod's link ends without it", "err", err)
	return p.delWithoutAgent(ctx, req, path)
}

// delWithoutAgent removes every interface ratchet made in the pod's netns
// (while the path still names the pod's netns) and leaves the pod state as
// a tombstone for the agent.
func (p *AgentPairer) delWithoutAgent(ctx context.Context, req *agentapi.Request, path string) error {
	st, err := agentapi.ReadState(path)
	if err != nil {
		return fmt.Errorf("pairing state: %w", err)
	}
	netns := req.NetNS
	if netns == "" {
		netns = st.NetNS
	}
	if sameNetns(netns, st.NetnsInode) {
		n, err := wiring.RemoveAllOwned(ctx, netns)
		if err != nil {
			return fmt.Errorf("remove link ends without the agent: %w", err)
		}
		p.log.Info("removed link ends without the agent", "count", n)
	}
	if err := os.Rename(path, agentapi.TombstonePath(p.conf.CNIDir, req.ContainerID)); err != nil {
		return fmt.Errorf("leave the pod's records to the agent: %w", err)
	}
	return nil
}

// Check asks the agent to compare the pod's links with their records.
func (p *AgentPairer) Check(ctx context.Context, req *agentapi.Request) error {
	return p.client.CallStarting(ctx, p.starter, agentapi.PathCheck, req, nil)
}

// Status asks the agent whether it reaches etcd.
func (p *AgentPairer) Status(ctx context.Context) error {
	return p.client.CallStarting(ctx, p.starter, agentapi.PathStatus, agentapi.StatusRequest{Netconf: p.raw}, nil)
}

// GC asks the agent to tear down this host's pairings that are not valid.
func (p *AgentPairer) GC(ctx context.Context, valid []types.GCAttachment) error {
	req := agentapi.GCRequest{Netconf: p.raw}
	for _, v := range valid {
		req.Valid = append(req.Valid, agentapi.Attachment{ContainerID: v.ContainerID, IfName: v.IfName})
	}
	return p.client.CallStarting(ctx, p.starter, agentapi.PathGC, req, nil)
}

// Close releases nothing: every call has its own connection.
func (p *AgentPairer) Close() error { return nil }

// sameNetns reports whether path still names the netns recorded with
// inode (when one was recorded) and is not the plugin's own netns.
func sameNetns(path string, inode uint64) bool {
	ino := func(p string) uint64 {
		var st syscall.Stat_t
		if p == "" || syscall.Stat(p, &st) != nil {
			return 0
		}
		return st.Ino
	}
	cur := ino(path)
	if cur == 0 || cur == ino("/proc/self/ns/net") {
		return false
	}
	return inode == 0 || cur == inode
}
