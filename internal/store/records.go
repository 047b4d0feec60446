package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"

	"github.com/ratchet-cni/ratchet/internal/metadata"
)

// PodRecord is a ratchet pod as recorded by the ADD that set it up.
type PodRecord struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	ContainerID string `json:"containerID"`
	Netns       string `json:"netns"`
	// NetnsInode identifies the netns behind Netns (a /proc/PID path can be
	// reused by another process once the pod is gone).
	NetnsInode uint64 `json:"netnsInode,omitempty"`
	// IfName is the interface the master delegate was given (eth0).
	IfName string `json:"ifName"`
	// Host is the node's name; HostAddress its vxlan underlay address.
	Host        string       `json:"host"`
	HostAddress string       `json:"hostAddress"`
	Pod         metadata.Pod `json:"pod"`
	Created     time.Time    `json:"created"`
	// Source is the metadata source that described the pod ("docker",
	// "kubernetes", "etcd"); the agent re-reads the sources that can
	// change (all but docker) and re-declares the pod's links.
	Source string `json:"source,omitempty"`
	// Reserved are the interface names of the pod's delegates, which no
	// link may take.
	Reserved []string `json:"reserved,omitempty"`
}

// LinkEnd is one end of a link.
type LinkEnd struct {
	Pod    string `json:"pod"`
	IfName string `json:"ifName"`
	IP     string `json:"ip,omitempty"`
	// ContainerID and Host are set once the end's pod is known.
	ContainerID string `json:"containerID,omitempty"`
	Host        string `json:"host,omitempty"`
	// Up: this end's interface exists and is configured.
	Up bool `json:"up"`
	// Remote is the peer host address this end's vxlan points to (vxlan only).
	Remote string `json:"remote,omitempty"`
	// Stitched: on a cross-host link (VNI set), this end is the veth its
	// pod kept when the peer left a same-host link: the veth's parked end
	// and a vxlan in the host netns carry it to Remote (wiring.Stitch), so
	// the pod's interface never had to be rebuilt.
	Stitched bool `json:"stitched,omitempty"`
	// Netem is the impairment of this end's egress, as declared with the
	// link or set by `ratchetctl link set`; nil impairs nothing.
	Netem *netem.Spec `json:"netem,omitempty"`
	// Applied says how the end's host applied Netem: the mechanisms
	// ("netem", "tbf", "bpf", joined by "+") and what it could not apply
	// ("not applied: delay: kernel has no sch_netem"); "" while nothing is
	// in force.
	Applied string `json:"applied,omitempty"`
}

// LinkState is the state of a link.
type LinkState string

// Link states.
const (
	LinkPending LinkState = "pending"
	LinkWired   LinkState = "wired"
	LinkFailed  LinkState = "failed"
)

// LinkRecord is the state of one point-to-point link between two pods of a
// namespace; its key is Keys.Link(Namespace, ID).
type LinkRecord struct {
	ID        string  `json:"id"`
	Namespace string  `json:"namespace"`
	A         LinkEnd `json:"a"`
	B         LinkEnd `json:"b"`
	MTU       int     `json:"mtu,omitempty"`
	// VNI is the link's vxlan network identifier, 0 for a veth.
	VNI   uint32    `json:"vni,omitempty"`
	State LinkState `json:"state"`
	// Reason says why the link failed.
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
	// Declarer is the pod whose metadata declares the link.
	Declarer string `json:"declarer"`
	// Builder is the container that claimed the building of a same-host
	// veth, and Claimed when; the claim is the atomic "who builds" decision.
	Builder string    `json:"builder,omitempty"`
	Claimed time.Time `json:"claimed,omitempty"`
	// Blocked names the link that owns one of this link's interface ends
	// (see ClaimEnd): a blocked link is recorded failed, with the reason,
	// and not wired until its ends are free.
	Blocked string `json:"blocked,omitempty"`
	// EndsClaimed says the declarer claimed both ends for this link (see
	// ClaimEnd); a record made from the peer's side only checks them.
	EndsClaimed bool `json:"endsClaimed,omitempty"`
	// Gone is when one pod of the link went away (its DEL) while the
	// other stayed; zero once both ends are wired again. A link whose pod
	// is not back within pairTimeout of it is failed: gone for good.
	Gone time.Time `json:"gone,omitempty"`
	// Admin is the link's administrative state: AdminDown after `ratchetctl
	// link down` (both ends without carrier), "" or AdminUp otherwise.
	Admin string `json:"admin,omitempty"`
	// NetemSet: the ends' Netem were set at run time (`ratchetctl link
	// set` or `link clear`); the pods' declarations no longer change them.
	NetemSet bool `json:"netemSet,omitempty"`
}

// Administrative states of a link.
const (
	AdminUp   = "up"
	AdminDown = "down"
)

// IsDown reports whether the link was set down.
func (r *LinkRecord) IsDown() bool { return r.Admin == AdminDown }

// AgentRecord announces a running node agent (ratchetd); it expires with
// the agent's TTL unless the agent refreshes it.
type AgentRecord struct {
	Host string `json:"host"`
	// Address is the host's vxlan underlay address.
	Address string    `json:"address"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	PID     int       `json:"pid"`
	// Pods and Links count the ratchet pods on the host and their links;
	// Pending the links not wired yet.
	Pods     int  `json:"pods"`
	Links    int  `json:"links"`
	Pending  int  `json:"pending"`
	OnDemand bool `json:"onDemand,omitempty"`
}

// Entry is one decoded record of a list, with its key and version.
type Entry[T any] struct {
	Key     string
	Version int64
	Value   T
}

// Encode marshals a record to its JSON value.
func Encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return b, nil
}

// Decode unmarshals kv's JSON value into v; the error names the key.
func Decode(kv KV, v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	return nil
}

// GetJSON reads and decodes one record; it returns the key's version.
func GetJSON[T any](ctx context.Context, s Store, key string) (T, int64, error) {
	var v T
	kv, err := s.Get(ctx, key)
	if err != nil {
		return v, 0, err
	}
	if err := Decode(kv, &v); err != nil {
		return v, 0, err
	}
	return v, kv.Version, nil
}

// ListJSON reads and decodes every record below dir; it returns the
// revision to watch after. An undecodable record fails the list.
func ListJSON[T any](ctx context.Context, s Store, dir string) ([]Entry[T], int64, error) {
	kvs, rev, err := s.List(ctx, dir)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Entry[T], 0, len(kvs))
	for _, kv := range kvs {
		e := Entry[T]{Key: kv.Key, Version: kv.Version}
		if err := Decode(kv, &e.Value); err != nil {
			return nil, 0, err
		}
		out = append(out, e)
	}
	return out, rev, nil
}

// CreateJSON encodes v and creates key with it (ErrExists if present).
func CreateJSON(ctx context.Context, s Store, key string, v any, ttl time.Duration) (KV, error) {
	b, err := Encode(v)
	if err != nil {
		return KV{}, err
	}
	return s.Create(ctx, key, b, ttl)
}

// UpdateJSON encodes v and writes it to key if key is still at version.
func UpdateJSON(ctx context.Context, s Store, key string, v any, version int64) (KV, error) {
	b, err := Encode(v)
	if err != nil {
		return KV{}, err
	}
	return s.Update(ctx, key, b, version)
}

// PutJSON encodes v and writes it to key unconditionally.
func PutJSON(ctx context.Context, s Store, key string, v any) (KV, error) {
	b, err := Encode(v)
	if err != nil {
		return KV{}, err
	}
	return s.Put(ctx, key, b)
}

// GetPod reads a pod's record and its version.
func GetPod(ctx context.Context, s Store, k Keys, ns, name string) (PodRecord, int64, error) {
	return GetJSON[PodRecord](ctx, s, k.Pod(ns, name))
}

// ListPods reads the pod records of ns ("" = all namespaces).
func ListPods(ctx context.Context, s Store, k Keys, ns string) ([]Entry[PodRecord], int64, error) {
	return ListJSON[PodRecord](ctx, s, k.Pods(ns))
}

// GetLink reads a link's record and its version.
func GetLink(ctx context.Context, s Store, k Keys, ns, id string) (LinkRecord, int64, error) {
	return GetJSON[LinkRecord](ctx, s, k.Link(ns, id))
}

// ListLinks reads the link records of ns ("" = all namespaces).
func ListLinks(ctx context.Context, s Store, k Keys, ns string) ([]Entry[LinkRecord], int64, error) {
	return ListJSON[LinkRecord](ctx, s, k.Links(ns))
}

// GetAnnounce reads the metadata the announcer wrote for a pod: label key
// to value, as in Docker labels.
func GetAnnounce(ctx context.Context, s Store, k Keys, ns, name string) (map[string]string, int64, error) {
	return GetJSON[map[string]string](ctx, s, k.Announce(ns, name))
}
