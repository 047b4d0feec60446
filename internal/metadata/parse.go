package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/ifname"
)

// Bounds of the values Parse accepts.
const (
	// MaxIfNameLen is the longest Linux interface name (IFNAMSIZ - 1).
	MaxIfNameLen = ifname.MaxLen
	// MaxDNSLabelLen is the longest RFC 1123 DNS label.
	MaxDNSLabelLen = 63
	// MinMTU and MaxMTU bound a link's MTU; 0 means the default.
	MinMTU = 68
	MaxMTU = 65535
	// DefaultIPv4PrefixLen and DefaultIPv6PrefixLen are given to a bare
	// address: /24 as the first ratchet did, /64 for IPv6.
	DefaultIPv4PrefixLen = 24
	DefaultIPv6PrefixLen = 64
)

// Parse validates a pod's ratchet metadata. It returns nil, nil when the
// labels do not make a ratchet pod (KeyRatchet is not exactly "true"), and an
// *Error naming the offending key when they are invalid. reserved are the
// interface names the delegates use in every pod (CNI_IFNAME, e.g. "eth0",
// then net1, …); no link may use them on either end, nor "lo".
//
// An empty value is the same as an absent key. Addresses are normalised to
// CIDRs that keep the host address: a bare IPv4 address gets /24, a bare IPv6
// address /64.
func Parse(labels map[string]string, reserved ...string) (*Pod, error) {
	if labels[KeyRatchet] != "true" {
		return nil, nil
	}
	if err := checkSizes(labels); err != nil {
		return nil, err
	}
	p, err := parseIdentity(labels)
	if err != nil {
		return nil, err
	}
	v := newValidator(p.Name, reserved)
	if err := parsePairKeys(labels, p, v); err != nil {
		return nil, err
	}
	if err := parseLinksKey(labels[KeyLinks], p, v); err != nil {
		return nil, err
	}
	if err := parseKept(labels, p); err != nil {
		return nil, err
	}
	return p, nil
}

// parseIdentity reads the pod's name, namespace and primary flag.
func parseIdentity(labels map[string]string) (*Pod, error) {
	p := &Pod{Name: labels[KeyPodName], Namespace: labels[KeyNamespace]}
	if p.Name == "" {
		return nil, invalid(KeyPodName, "", "required for a ratchet pod")
	}
	if reason := checkDNSLabel(p.Name); reason != "" {
		return nil, invalid(KeyPodName, p.Name, reason)
	}
	if p.Namespace == "" {
		p.Namespace = DefaultNamespace
	} else if reason := checkDNSLabel(p.Namespace); reason != "" {
		return nil, invalid(KeyNamespace, p.Namespace, reason)
	}
	switch s := labels[KeyPrimary]; s {
	case "", "false":
	case "true":
		p.Primary = true
	default:
		return nil, invalid(KeyPrimary, s, `must be "true" or "false"`)
	}
	return p, nil
}

// pairKeys are the keys of the link described by the local_*/pair_* labels.
var pairKeys = linkKeys{
	peer:       KeyPairName,
	ifName:     KeyLocalIfName,
	ip:         KeyLocalIP,
	peerIfName: KeyPairIfName,
	peerIP:     KeyPairIP,
}

// parsePairKeys turns the local_*/pair_* labels and ratchet.netem into the
// primary link (a primary pod) or an expected link (a non-primary pod).
func parsePairKeys(labels map[string]string, p *Pod, v *validator) error {
	l := Link{
		Peer:       labels[KeyPairName],
		IfName:     labels[KeyLocalIfName],
		IP:         labels[KeyLocalIP],
		PeerIfName: labels[KeyPairIfName],
		PeerIP:     labels[KeyPairIP],
	}
	spec, err := decodeNetem(KeyNetem, []byte(labels[KeyNetem]))
	if err != nil {
		return err
	}
	if l == (Link{}) && spec == nil {
		return nil
	}
	with := "required with " + setPairKeys(labels)
	switch {
	case l.Peer == "":
		return invalid(KeyPairName, "", with)
	case p.Primary && l.IfName == "":
		return invalid(KeyLocalIfName, "", with)
	case p.Primary && l.PeerIfName == "":
		return invalid(KeyPairIfName, "", with)
	}
	l, err = v.link(l, pairKeys, p.Primary)
	if err != nil {
		return err
	}
	l.Netem = spec
	if p.Primary {
		p.Links = append(p.Links, l)
	} else {
		p.Expects = append(p.Expects, l)
	}
	return nil
}

// setPairKeys names the local_*/pair_* keys and ratchet.netem that are set
// (and a true ratchet.primary), for the "required with" message.
func setPairKeys(labels map[string]string) string {
	var set []string
	for _, k := range []string{KeyPairName, KeyLocalIfName, KeyLocalIP, KeyPairIfName, KeyPairIP, KeyNetem} {
		if labels[k] != "" {
			set = append(set, k)
		}
	}
	if labels[KeyPrimary] == "true" {
		set = append(set, KeyPrimary+"=true")
	}
	return strings.Join(set, ", ")
}

// parseLinksKey decodes ratchet.links, a JSON array of links this pod
// declares, and appends them to p.Links. Each entry is decoded strictly,
// its impairments (netem, local_netem, peer_netem) too.
func parseLinksKey(raw string, p *Pod, v *validator) error {
	if raw == "" {
		return nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &entries); err != nil {
		return invalid(KeyLinks, raw, "not a JSON array of links: "+err.Error())
	}
	if len(entries) > MaxLinks {
		return invalid(KeyLinks, raw, fmt.Sprintf("%d links, more than the limit of %d", len(entries), MaxLinks))
	}
	for i, e := range entries {
		prefix := fmt.Sprintf("%s[%d]", KeyLinks, i)
		var entry linkEntry
		dec := json.NewDecoder(bytes.NewReader(e))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&entry); err != nil {
			return invalid(prefix, string(e), "not a link: "+err.Error())
		}
		l, err := v.link(entry.Link, entryKeys(prefix), true)
		if err != nil {
			return err
		}
		if err := entry.netems(prefix, &l); err != nil {
			return err
		}
		p.Links = append(p.Links, l)
	}
	return nil
}

// parseKept copies the keys that are kept in records but not used for wiring.
func parseKept(labels map[string]string, p *Pod) error {
	p.TargetPod = labels[KeyTargetPod]
	p.TargetContainer = labels[KeyTargetContainer]
	if s := labels[KeyPublicIP]; s != "" {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return invalid(KeyPublicIP, s, "not an IP address")
		}
		p.PublicIP = addr.String()
	}
	return nil
}

// linkKeys names the keys a link's fields came from, for error messages.
type linkKeys struct {
	peer, ifName, ip, peerIfName, peerIP, mtu string
}

func entryKeys(prefix string) linkKeys {
	return linkKeys{
		peer:       prefix + ".peer",
		ifName:     prefix + ".ifname",
		ip:         prefix + ".ip",
		peerIfName: prefix + ".peer_ifname",
		peerIP:     prefix + ".peer_ip",
		mtu:        prefix + ".mtu",
	}
}

// validator checks links one by one and remembers the interface names they
// use, on this pod and on each peer, to catch clashes between links.
type validator struct {
	pod      string
	reserved []string
	local    map[string]string // ifname -> key that used it
	remote   map[string]string // peer + "/" + ifname -> key that used it
}

func newValidator(pod string, reserved []string) *validator {
	return &validator{pod: pod, reserved: reserved, local: map[string]string{}, remote: map[string]string{}}
}

// link validates l and returns it with its addresses normalised. A declared
// link needs both interface names; an expected one only its peer.
func (v *validator) link(l Link, k linkKeys, declared bool) (Link, error) {
	if l.Peer == "" {
		return l, invalid(k.peer, "", "required")
	}
	if reason := checkDNSLabel(l.Peer); reason != "" {
		return l, invalid(k.peer, l.Peer, reason)
	}
	if l.Peer == v.pod {
		return l, invalid(k.peer, l.Peer, "a link from the pod to itself")
	}
	if err := v.ifName(k.ifName, l.IfName, declared, v.local, ""); err != nil {
		return l, err
	}
	if err := v.ifName(k.peerIfName, l.PeerIfName, declared, v.remote, l.Peer+"/"); err != nil {
		return l, err
	}
	var err error
	if l.IP, err = normaliseIP(k.ip, l.IP); err != nil {
		return l, err
	}
	if l.PeerIP, err = normaliseIP(k.peerIP, l.PeerIP); err != nil {
		return l, err
	}
	if l.MTU != 0 && (l.MTU < MinMTU || l.MTU > MaxMTU) {
		return l, invalid(k.mtu, strconv.Itoa(l.MTU),
			fmt.Sprintf("MTU outside %d..%d (0 means the default)", MinMTU, MaxMTU))
	}
	return l, checkEnds(l, k)
}

// ifName checks one interface name and records it in used under scope.
func (v *validator) ifName(key, name string, required bool, used map[string]string, scope string) error {
	if name == "" {
		if required {
			return invalid(key, "", "required")
		}
		return nil
	}
	if reason := checkIfName(name, v.reserved); reason != "" {
		return invalid(key, name, reason)
	}
	if prev, ok := used[scope+name]; ok {
		return invalid(key, name, "interface name already used by "+prev)
	}
	used[scope+name] = key
	return nil
}

// checkIfName returns why name cannot be a link's interface name, or "".
func checkIfName(name string, reserved []string) string {
	if reason := ifname.Reason(name); reason != "" {
		return "not a valid interface name: " + reason
	}
	switch {
	case name == "lo":
		return "clashes with the loopback interface"
	case len(reserved) > 0 && name == reserved[0]:
		return "clashes with the master interface " + name
	case slices.Contains(reserved, name):
		return "clashes with " + name + ", the interface of a delegate"
	}
	return ""
}

// checkDNSLabel returns why s is not an RFC 1123 DNS label, or "".
func checkDNSLabel(s string) string {
	const reason = "not a DNS label (RFC 1123: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
	if len(s) == 0 || len(s) > MaxDNSLabelLen || s[0] == '-' || s[len(s)-1] == '-' {
		return reason
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return reason
		}
	}
	return ""
}
