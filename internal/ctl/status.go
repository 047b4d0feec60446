package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Status is the state of ratchet's pods and links, as `status -o json`
// prints it.
type Status struct {
	Pods  []PodStatus  `json:"pods"`
	Links []LinkStatus `json:"links"`
}

// PodStatus is a pod that has a record (ADD ran) or an announced record.
type PodStatus struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	ContainerID string     `json:"containerID,omitempty"`
	Netns       string     `json:"netns,omitempty"`
	Host        string     `json:"host,omitempty"`
	HostAddress string     `json:"hostAddress,omitempty"`
	Created     *time.Time `json:"created,omitempty"`
	// Links counts the link records with an end on the pod.
	Links int `json:"links"`
	// Recorded: a pod record exists (ADD ran); Announced: an announced
	// record exists.
	Recorded  bool `json:"recorded"`
	Announced bool `json:"announced"`
}

// LinkStatus is a link record with each end's host filled in.
type LinkStatus struct {
	ID        string    `json:"id"`
	Namespace string    `json:"namespace"`
	A         EndStatus `json:"a"`
	B         EndStatus `json:"b"`
	// State is pending, wired or failed; Reason says why it failed.
	State  store.LinkState `json:"state"`
	Reason string          `json:"reason,omitempty"`
	// Kind is veth (same host) or vxlan (VNI set).
	Kind     string    `json:"kind"`
	VNI      uint32    `json:"vni,omitempty"`
	MTU      int       `json:"mtu,omitempty"`
	Declarer string    `json:"declarer,omitempty"`
	Updated  time.Time `json:"updated"`
	// Admin is the administrative state, up or down (`ratchetctl link
	// down|up`); never empty.
	Admin string `json:"admin"`
	// NetemSet: the ends' impairments were set at run time (`ratchetctl
	// link set|clear`), the pods' declarations no longer change them.
	NetemSet bool `json:"netemSet,omitempty"`
}

// EndStatus is one end of a link.
type EndStatus struct {
	Pod    string `json:"pod"`
	IfName string `json:"ifname"`
	IP     string `json:"ip,omitempty"`
	Host   string `json:"host,omitempty"`
	Up     bool   `json:"up"`
	// Netem is the impairment declared for this end's egress; nil for none.
	Netem *netem.Spec `json:"netem,omitempty"`
	// Applied is how the end's host applied it, as its agent wrote it:
	// "netem", "tbf+bpf", "not applied: delay: kernel has no sch_netem", …;
	// "" while nothing is in force.
	Applied string `json:"applied,omitempty"`
	// Stitched: a cross-host link's end that is the veth its pod kept when
	// its peer left the host, carried to the peer's host by a vxlan in its
	// host's netns.
	Stitched bool `json:"stitched,omitempty"`
}

// String formats the end as "pod:ifname ip".
func (e EndStatus) String() string {
	s := e.Pod + ":" + e.IfName
	if e.IP != "" {
		s += " " + e.IP
	}
	return s
}

// snapshot is what the store holds for a namespace ("" = all).
type snapshot struct {
	pods      []store.Entry[store.PodRecord]
	links     []store.Entry[store.LinkRecord]
	announced []store.Entry[map[string]string]
}

func readSnapshot(ctx context.Context, kv store.Store, k store.Keys, ns string) (*snapshot, error) {
	var s snapshot
	var err error
	if s.pods, _, err = store.ListPods(ctx, kv, k, ns); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	if s.links, _, err = store.ListLinks(ctx, kv, k, ns); err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	if s.announced, _, err = store.ListJSON[map[string]string](ctx, kv, k.Announces(ns)); err != nil {
		return nil, fmt.Errorf("list announced records: %w", err)
	}
	return &s, nil
}

// status builds the Status of a snapshot: pods sorted by namespace and
// name, links by namespace and ID.
func (s *snapshot) status() *Status {
	pods := map[string]*PodStatus{}
	get := func(ns, name string) *PodStatus {
		key := ns + "/" + name
		if p, ok := pods[key]; ok {
			return p
		}
		p := &PodStatus{Namespace: ns, Name: name}
		pods[key] = p
		return p
	}
	for _, e := range s.pods {
		r := e.Value
		p := get(r.Namespace, r.Name)
		created := r.Created
		p.ContainerID, p.Netns, p.Host, p.HostAddress, p.Created, p.Recorded = r.ContainerID, r.Netns, r.Host, r.HostAddress, &created, true
	}
	for _, e := range s.announced {
		ns, name := announcedName(e.Key)
		get(ns, name).Announced = true
	}
	st := &Status{Pods: []PodStatus{}, Links: []LinkStatus{}}
	for _, e := range s.links {
		r := e.Value
		l := LinkStatus{
			ID: r.ID, Namespace: r.Namespace, State: r.State, Reason: r.Reason, Kind: "veth", VNI: r.VNI,
			MTU: r.MTU, Declarer: r.Declarer, Updated: r.Updated, Admin: adminState(&r), NetemSet: r.NetemSet,
			A: endStatus(r.A, pods[r.Namespace+"/"+r.A.Pod]), B: endStatus(r.B, pods[r.Namespace+"/"+r.B.Pod]),
		}
		if r.VNI != 0 {
			l.Kind = "vxlan"
		}
		for _, end := range []string{r.A.Pod, r.B.Pod} {
			if p, ok := pods[r.Namespace+"/"+end]; ok {
				p.Links++
			}
		}
		st.Links = append(st.Links, l)
	}
	for _, p := range pods {
		st.Pods = append(st.Pods, *p)
	}
	st.sort()
	return st
}

// sort orders pods by namespace and name, links by namespace and ID.
func (st *Status) sort() {
	sort.Slice(st.Pods, func(i, j int) bool {
		a, b := st.Pods[i], st.Pods[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	sort.SliceStable(st.Links, func(i, j int) bool {
		a, b := st.Links[i], st.Links[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.ID < b.ID
	})
}

// announcedName reads namespace and name from a per-pod key such as
// …/announce/<ns>/<name>.
func announcedName(key string) (ns, name string) {
	parts := strings.Split(key, "/")
	if len(parts) < 2 {
		return "", key
	}
	return parts[len(parts)-2], parts[len(parts)-1]
}

// endStatus is a link end with its host: the one recorded on the end, else
// that of its pod's record.
func endStatus(e store.LinkEnd, pod *PodStatus) EndStatus {
	out := EndStatus{Pod: e.Pod, IfName: e.IfName, IP: e.IP, Host: e.Host, Up: e.Up, Netem: e.Netem, Applied: e.Applied, Stitched: e.Stitched}
	if out.Host == "" && pod != nil {
		out.Host = pod.Host
	}
	return out
}

// writeJSON prints st as indented JSON.
func writeJSON(w io.Writer, st *Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

// writeTable prints st as two tables, pods and links.
func writeTable(w io.Writer, st *Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOD\tCONTAINER\tHOST\tHOST ADDRESS\tAGE\tLINKS\tANNOUNCED")
	for _, p := range st.Pods {
		age := "-"
		if p.Created != nil {
			age = humanAge(now.Sub(*p.Created))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.Namespace, p.Name, dash(shortID(p.ContainerID)),
			dash(p.Host), dash(p.HostAddress), age, p.Links, yesNo(p.Announced))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NAMESPACE\tLINK\tSTATE\tADMIN\tA\tHOST A\tB\tHOST B\tVNI\tAGE\tREASON\tIMPAIRMENT")
	for _, l := range st.Links {
		vni := "-"
		if l.VNI != 0 {
			vni = strconv.FormatUint(uint64(l.VNI), 10) + keptVeths(l)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Namespace, l.ID, l.State, dash(l.Admin),
			l.A, dash(l.A.Host), l.B, dash(l.B.Host), vni, humanAge(now.Sub(l.Updated)), dash(oneLine(l.Reason)),
			dash(impairmentText(l)))
	}
	return tw.Flush()
}

// keptVeths notes the ends of a cross-host link that are veths kept from
// when the link was on one host: " (a: kept veth)", "" for none.
func keptVeths(l LinkStatus) string {
	var ends []string
	if l.A.Stitched {
		ends = append(ends, "a")
	}
	if l.B.Stitched {
		ends = append(ends, "b")
	}
	if len(ends) == 0 {
		return ""
	}
	return " (" + strings.Join(ends, ",") + ": kept veth)"
}

// impairmentText is a link's impairments and how they are applied,
// compactly: "a: loss 30% rate 1mbit [tbf+bpf]; b: delay 50ms [not
// applied: delay: kernel has no sch_netem]", one "a,b: …" when both ends
// say the same; "" when no end declares or applies anything.
func impairmentText(l LinkStatus) string {
	a, b := endImpairment(l.A), endImpairment(l.B)
	switch {
	case a == "" && b == "":
		return ""
	case a == b:
		return "a,b: " + a
	case a == "":
		return "b: " + b
	case b == "":
		return "a: " + a
	}
	return "a: " + a + "; b: " + b
}

// endImpairment is one end's declared impairment and, in brackets, how its
// host applied it; "" for an end without either.
func endImpairment(e EndStatus) string {
	declared := e.Netem != nil && !e.Netem.IsZero()
	switch {
	case !declared && e.Applied == "":
		return ""
	case e.Applied == "":
		return specText(e.Netem) + " [not applied yet]"
	}
	return specText(e.Netem) + " [" + oneLine(e.Applied) + "]"
}

// oneLine replaces the control characters of s, text from a record, so
// that it stays on its table row.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// shortID is the first 12 characters of a container ID, as docker prints it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// humanAge formats a duration as kubectl does: 45s, 3m, 5h, 2d.
func humanAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
