package ctl

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Edge colours by link state.
var stateColor = map[store.LinkState]string{
	store.LinkWired:   "green",
	store.LinkPending: "orange",
	store.LinkFailed:  "red",
	stateAnnounced:    "gray",
}

// stateAnnounced marks a link that an announced record declares but that
// has no link record yet (no end ADDed): drawn dashed.
const stateAnnounced store.LinkState = "announced"

// announcedLinks returns the links the announced records declare that have
// no link record, as pending-looking LinkStatus values in state
// "announced". Records that do not parse are left out.
func (s *snapshot) announcedLinks(recorded []LinkStatus) []LinkStatus {
	have := map[string]bool{}
	for _, l := range recorded {
		have[l.Namespace+"/"+l.ID] = true
	}
	var out []LinkStatus
	for _, e := range s.announced {
		pod, err := metadata.Parse(e.Value, "")
		if err != nil || pod == nil {
			continue
		}
		for _, l := range append(append([]metadata.Link{}, pod.Links...), pod.Expects...) {
			id := store.LinkID(pod.Name, l.IfName, l.Peer, l.PeerIfName)
			if have[pod.Namespace+"/"+id] {
				continue
			}
			have[pod.Namespace+"/"+id] = true
			a := EndStatus{Pod: pod.Name, IfName: l.IfName, IP: l.IP, Netem: l.EndNetem(true)}
			b := EndStatus{Pod: l.Peer, IfName: l.PeerIfName, IP: l.PeerIP, Netem: l.EndNetem(false)}
			out = append(out, LinkStatus{ID: id, Namespace: pod.Namespace, A: a, B: b, State: stateAnnounced, MTU: l.MTU,
				Admin: store.AdminUp})
		}
	}
	return out
}

// writeDOT prints a Graphviz graph of st: pods are nodes, grouped in one
// cluster per host (pods without a record stand outside, dashed); links are
// edges labelled with their ends and impairments, coloured by state (wired
// green, pending orange, failed red, announced but not ADDed gray and
// dashed); a link set down is dashed and labelled "admin down".
func writeDOT(w io.Writer, st *Status, extra []LinkStatus) error {
	var b strings.Builder
	b.WriteString("graph ratchet {\n")
	b.WriteString("  graph [fontname=\"Helvetica\", label=\"ratchet links\", labelloc=t];\n")
	b.WriteString("  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=10];\n")
	links := append(append([]LinkStatus{}, st.Links...), extra...)
	nodes := dotNodes(st, links)
	hosts := map[string][]string{}
	var hostNames []string
	for _, id := range sortedKeys(nodes) {
		n := nodes[id]
		if n.host == "" {
			fmt.Fprintf(&b, "  %s;\n", n.decl(id))
			continue
		}
		if _, ok := hosts[n.host]; !ok {
			hostNames = append(hostNames, n.host)
		}
		hosts[n.host] = append(hosts[n.host], id)
	}
	sort.Strings(hostNames)
	for i, h := range hostNames {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n    style=rounded;\n    color=gray40;\n", i, quote("host "+h))
		for _, id := range hosts[h] {
			fmt.Fprintf(&b, "    %s;\n", nodes[id].decl(id))
		}
		b.WriteString("  }\n")
	}
	for _, l := range links {
		b.WriteString("  " + dotEdge(l) + ";\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotNode is a pod as a node.
type dotNode struct {
	name, ns, host string
	recorded       bool
}

func (n dotNode) decl(id string) string {
	label := n.name
	if n.ns != metadata.DefaultNamespace {
		label += "\n(" + n.ns + ")"
	}
	attrs := "label=" + quote(label)
	if !n.recorded {
		attrs += `, style="rounded,dashed", tooltip="no pod record (not ADDed)"`
	}
	return quote(id) + " [" + attrs + "]"
}

// dotNodes collects the pods of st and of the links' ends, by
// namespace/name.
func dotNodes(st *Status, links []LinkStatus) map[string]dotNode {
	nodes := map[string]dotNode{}
	for _, p := range st.Pods {
		nodes[p.Namespace+"/"+p.Name] = dotNode{name: p.Name, ns: p.Namespace, host: p.Host, recorded: p.Recorded}
	}
	for _, l := range links {
		for _, e := range []EndStatus{l.A, l.B} {
			id := l.Namespace + "/" + e.Pod
			if _, ok := nodes[id]; !ok {
				nodes[id] = dotNode{name: e.Pod, ns: l.Namespace, host: e.Host}
			}
		}
	}
	return nodes
}

// dotEdge is a link as an edge.
func dotEdge(l LinkStatus) string {
	down := l.Admin == store.AdminDown
	label := l.A.String() + "\n" + l.B.String() + "\n" + string(l.State)
	if l.VNI != 0 {
		label += fmt.Sprintf(" (vxlan %d)", l.VNI)
	}
	if down {
		label += ", admin down"
	}
	for _, line := range dotImpairment(l) {
		label += "\n" + line
	}
	color, ok := stateColor[l.State]
	if !ok {
		color = "black"
	}
	tips := []string{l.ID}
	if l.Reason != "" {
		tips = append(tips, l.Reason)
	}
	if down {
		tips = append(tips, "admin down")
	}
	if t := impairmentText(l); t != "" {
		tips = append(tips, "impairment "+t)
	}
	tooltip := strings.Join(tips, "; ")
	attrs := []string{
		"label=" + quote(label),
		"color=" + color,
		"fontcolor=" + color,
		"tooltip=" + quote(oneLine(tooltip)),
	}
	if l.State == stateAnnounced || down {
		attrs = append(attrs, "style=dashed")
	}
	if l.State == store.LinkFailed {
		attrs = append(attrs, "penwidth=2")
	}
	return quote(l.Namespace+"/"+l.A.Pod) + " -- " + quote(l.Namespace+"/"+l.B.Pod) + " [" + strings.Join(attrs, ", ") + "]"
}

// dotImpairment is an edge's impairment lines: one when both ends declare
// the same ("loss 30% rate 1mbit"), else one per direction, an end's
// egress being its direction ("a.in1 -> b.in2: loss 30%"); "(not all
// applied)" marks an end whose host could not apply everything.
func dotImpairment(l LinkStatus) []string {
	partly := func(e EndStatus) string {
		if strings.Contains(e.Applied, "not applied") {
			return " (not all applied)"
		}
		return ""
	}
	declared := func(e EndStatus) bool { return e.Netem != nil && !e.Netem.IsZero() }
	if !declared(l.A) && !declared(l.B) {
		return nil
	}
	if sameSpec(l.A.Netem, l.B.Netem) {
		p := partly(l.A)
		if p == "" {
			p = partly(l.B)
		}
		return []string{specText(l.A.Netem) + p}
	}
	var lines []string
	for _, d := range []struct{ from, to EndStatus }{{l.A, l.B}, {l.B, l.A}} {
		if declared(d.from) {
			lines = append(lines, d.from.Pod+"."+d.from.IfName+" -> "+d.to.Pod+"."+d.to.IfName+": "+specText(d.from.Netem)+partly(d.from))
		}
	}
	return lines
}

// quote makes s a DOT double-quoted string: '"' and '\' are escaped, a
// newline becomes the centred line break \n.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")
	return `"` + r.Replace(s) + `"`
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
