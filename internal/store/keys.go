package store

import (
	"sort"
	"strconv"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/etcdcfg"
)

// Keys builds ratchet's key schema under Prefix:
//
//	<prefix>/pods/<ns>/<name>          PodRecord
//	<prefix>/links/<ns>/<linkID>       LinkRecord
//	<prefix>/vni/<n>                   owner (a link key): VNI reservation
//	<prefix>/agents/<host>             AgentRecord (one per host, with TTL)
//	<prefix>/announce/<ns>/<name>      announced metadata (label key → value)
//	<prefix>/ends/<ns>/<pod>.<ifname>  EndClaim: the one link that owns the end
//
// A plural method returns a directory for Store.List, Watch and DeleteDir;
// its ns "" means all namespaces.
type Keys struct{ Prefix string }

func (k Keys) join(parts ...string) string {
	return etcdcfg.NormalizePrefix(k.Prefix) + "/" + strings.Join(parts, "/")
}

func (k Keys) dir(kind, ns string) string {
	if ns == "" {
		return k.join(kind)
	}
	return k.join(kind, ns)
}

// Pod is the key of a pod's PodRecord.
func (k Keys) Pod(ns, name string) string { return k.join("pods", ns, name) }

// Pods is the directory of the pods of ns ("" = all).
func (k Keys) Pods(ns string) string { return k.dir("pods", ns) }

// Link is the key of a LinkRecord; id is a LinkID.
func (k Keys) Link(ns, id string) string { return k.join("links", ns, id) }

// Links is the directory of the links of ns ("" = all).
func (k Keys) Links(ns string) string { return k.dir("links", ns) }

// VNI is the reservation key of one VXLAN network identifier.
func (k Keys) VNI(n uint32) string { return k.join("vni", strconv.FormatUint(uint64(n), 10)) }

// VNIs is the directory of the VNI reservations.
func (k Keys) VNIs() string { return k.join("vni") }

// Agent is the key of a host's AgentRecord.
func (k Keys) Agent(host string) string { return k.join("agents", host) }

// Agents is the directory of the agents' records.
func (k Keys) Agents() string { return k.join("agents") }

// Announce is the key of a pod's announced metadata.
func (k Keys) Announce(ns, name string) string { return k.join("announce", ns, name) }

// Announces is the directory of the announced metadata of ns ("" = all).
func (k Keys) Announces(ns string) string { return k.dir("announce", ns) }

// LinkID is the canonical ID of the link between end (podA, ifA) and end
// (podB, ifB): the two ends "pod.ifname", sorted, joined by "--", e.g.
// "a.in1--b.in2". Both sides compute the same ID. Characters that could
// make it ambiguous or not a single key segment ('/', '%', '.' in a pod
// name, a '-' next to another '-' or at either edge, control and non-ASCII
// bytes) are %XX-escaped, so distinct links never share an ID.
func LinkID(podA, ifA, podB, ifB string) string {
	ends := []string{EndID(podA, ifA), EndID(podB, ifB)}
	sort.Strings(ends)
	return ends[0] + "--" + ends[1]
}

// escapeSegment %XX-escapes the bytes of s that LinkID must not contain
// verbatim; isPod also escapes '.', the pod/ifname separator.
func escapeSegment(s string, isPod bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		keep := c > ' ' && c < 0x7f && c != '/' && c != '%' && c != '_'
		switch {
		case c == '.' && isPod:
			keep = false
		case c == '_' && i > 0:
			keep = true // only a leading '_' is special (hidden in v2)
		case c == '-':
			keep = i > 0 && i < len(s)-1 && s[i-1] != '-' && s[i+1] != '-'
		}
		if keep {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// End is the claim key of one interface end (pod, ifname): an EndClaim
// naming the one link that owns the end.
func (k Keys) End(ns, pod, ifname string) string { return k.join("ends", ns, EndID(pod, ifname)) }

// Ends is the directory of the end claims of ns ("" = all).
func (k Keys) Ends(ns string) string { return k.dir("ends", ns) }

// EndID names one interface end as a single key segment, "pod.ifname",
// escaped as in LinkID.
func EndID(pod, ifname string) string {
	return escapeSegment(pod, true) + "." + escapeSegment(ifname, false)
}
