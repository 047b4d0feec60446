// Package metadata reads and validates a pod's ratchet metadata: the
// `ratchet.*` keys found in Docker labels or in a record the announcer wrote.
// It turns them into a Pod with the links it declares and expects.
package metadata

import "github.com/ratchet-cni/ratchet/internal/netem"

// Label keys (DESIGN.md). Docker labels and announced records use the same keys.
const (
	KeyRatchet         = "ratchet"
	KeyPodName         = "ratchet.pod_name"
	KeyNamespace       = "ratchet.namespace"
	KeyPrimary         = "ratchet.primary"
	KeyLocalIfName     = "ratchet.local_ifname"
	KeyLocalIP         = "ratchet.local_ip"
	KeyPairName        = "ratchet.pair_name"
	KeyPairIfName      = "ratchet.pair_ifname"
	KeyPairIP          = "ratchet.pair_ip"
	KeyLinks           = "ratchet.links"
	KeyNetem           = "ratchet.netem"
	KeyTargetPod       = "ratchet.target_pod"
	KeyTargetContainer = "ratchet.target_container"
	KeyPublicIP        = "ratchet.public_ip"
)

// DefaultNamespace is the namespace of a pod whose metadata names none.
const DefaultNamespace = "default"

// Pod is a ratchet pod's validated metadata.
type Pod struct {
	// Name and Namespace identify the pod (ratchet.pod_name, ratchet.namespace).
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Primary is ratchet.primary: the local_*/pair_* keys declare a link.
	Primary bool `json:"primary"`
	// Links are the links this pod declares: the primary link (from the
	// local_*/pair_* keys when Primary) followed by ratchet.links.
	Links []Link `json:"links,omitempty"`
	// Expects are links this pod waits for but does not declare: the
	// local_*/pair_* keys of a non-primary pod. The declaring peer's
	// description wins where the two differ.
	Expects []Link `json:"expects,omitempty"`
	// Kept in records, not used for wiring.
	TargetPod       string `json:"targetPod,omitempty"`
	TargetContainer string `json:"targetContainer,omitempty"`
	PublicIP        string `json:"publicIP,omitempty"`
}

// Describes reports whether the metadata says anything about the pod's
// links: a pod that only carries ratchet=true (and its name) is marked as a
// ratchet pod whose links are described elsewhere or later.
func (p *Pod) Describes() bool {
	return len(p.Links) > 0 || len(p.Expects) > 0
}

// Link is one point-to-point link seen from the pod that describes it.
type Link struct {
	// Peer is the name of the pod at the other end (same namespace).
	Peer string `json:"peer"`
	// IfName and IP are this pod's end; IP is a normalised CIDR
	// (a bare address gets /24), empty for no address.
	IfName string `json:"ifname"`
	IP     string `json:"ip,omitempty"`
	// PeerIfName and PeerIP are the peer's end.
	PeerIfName string `json:"peer_ifname"`
	PeerIP     string `json:"peer_ip,omitempty"`
	// MTU of both ends; 0 means the default (1500 for veth, parent−50 for vxlan).
	MTU int `json:"mtu,omitempty"`
	// Netem impairs the egress of both ends; LocalNetem (this pod's end)
	// and PeerNetem (the peer's end) replace it for one end.
	Netem      *netem.Spec `json:"netem,omitempty"`
	LocalNetem *netem.Spec `json:"local_netem,omitempty"`
	PeerNetem  *netem.Spec `json:"peer_netem,omitempty"`
}

// Reversed returns the link as the peer sees it: ends swapped.
func (l Link) Reversed(pod string) Link {
	return Link{Peer: pod, IfName: l.PeerIfName, IP: l.PeerIP, PeerIfName: l.IfName, PeerIP: l.IP, MTU: l.MTU,
		Netem: l.Netem, LocalNetem: l.PeerNetem, PeerNetem: l.LocalNetem}
}

// EndNetem returns the impairment of this pod's end (local) or of the
// peer's end: the end's own, else the link's; nil for none.
func (l *Link) EndNetem(local bool) *netem.Spec {
	own := l.PeerNetem
	if local {
		own = l.LocalNetem
	}
	if own != nil {
		return own
	}
	return l.Netem
}
