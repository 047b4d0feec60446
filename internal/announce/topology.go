package announce

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v2"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/netem"
)

// Topology describes the pods of one namespace and the links between them,
// announced at once (announcer --file, ratchetctl populate --file). In YAML
// (or JSON):
//
//	namespace: default            # optional, default "default"
//	pods:                         # optional: pods with kept keys or own links
//	  - name: centosa             # required, a DNS label, listed once
//	    target_pod: centosa       # optional, kept in the record
//	    target_container: centosa # optional, kept in the record
//	    public_ip: 1.1.1.1        # optional, kept in the record
//	    links:                    # optional, as in ratchet.links: links this pod declares
//	      - {peer: quagga-a, ifname: in1, ip: 192.0.2.1/30, peer_ifname: in1, peer_ip: 192.0.2.2/30, mtu: 1500,
//	         netem: {loss: 1%}, local_netem: {delay: 10ms}, peer_netem: {rate: 10mbit}}  # optional impairments
//	links:                        # each link once
//	  - a: {pod: centosa,  ifname: in1, ip: 192.0.2.1/30}  # end a declares the link
//	    b: {pod: quagga-a, ifname: in1, ip: 192.0.2.2/30}  # end b expects it
//	    mtu: 1500                 # optional, 0 = default
//	    netem: {loss: 1%, rate: 100mbit}  # optional: impairs the egress of both ends
//	  - a: {pod: quagga-a, ifname: in2, netem: {delay: 10ms}}  # optional: a's egress only (replaces the link's netem there)
//	    b: {pod: quagga-b, ifname: in1}
//
// Every pod named anywhere gets a record. The pod at end a declares the link
// (the primary local_*/pair_* keys or ratchet.links): a link's netem becomes
// the entry's netem, a.netem its local_netem and b.netem its peer_netem; the
// fields and units are netem.Spec's. The pod at end b gets the link as its
// expected link (reversed: its own end local). Labels can carry only one
// expected link, and of it neither MTU nor an impairment of one end, so a
// pod at end b of several links carries the first only: ratchet's pairing
// finds the links that the other pods' records declare towards a pod, as
// they declare them. A bare IP gets /24 (IPv4) or /64 (IPv6), as in labels.
// Unknown keys are errors, inside netem too.
type Topology struct {
	Namespace string     `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Pods      []TopoPod  `yaml:"pods,omitempty" json:"pods,omitempty"`
	Links     []TopoLink `yaml:"links,omitempty" json:"links,omitempty"`
}

// TopoPod is a pod of a Topology with its kept keys and own links.
type TopoPod struct {
	Name            string        `yaml:"name" json:"name"`
	TargetPod       string        `yaml:"target_pod,omitempty" json:"target_pod,omitempty"`
	TargetContainer string        `yaml:"target_container,omitempty" json:"target_container,omitempty"`
	PublicIP        string        `yaml:"public_ip,omitempty" json:"public_ip,omitempty"`
	Links           []TopoPodLink `yaml:"links,omitempty" json:"links,omitempty"`
}

// TopoPodLink is a link a TopoPod declares, as an entry of ratchet.links.
// (netem.Spec's YAML keys are its field names in lower case, which are
// its JSON names.)
type TopoPodLink struct {
	Peer       string      `yaml:"peer" json:"peer"`
	IfName     string      `yaml:"ifname" json:"ifname"`
	IP         string      `yaml:"ip,omitempty" json:"ip,omitempty"`
	PeerIfName string      `yaml:"peer_ifname" json:"peer_ifname"`
	PeerIP     string      `yaml:"peer_ip,omitempty" json:"peer_ip,omitempty"`
	MTU        int         `yaml:"mtu,omitempty" json:"mtu,omitempty"`
	Netem      *netem.Spec `yaml:"netem,omitempty" json:"netem,omitempty"`
	LocalNetem *netem.Spec `yaml:"local_netem,omitempty" json:"local_netem,omitempty"`
	PeerNetem  *netem.Spec `yaml:"peer_netem,omitempty" json:"peer_netem,omitempty"`
}

// TopoLink is a link of a Topology: A declares it, B expects it. Netem
// impairs the egress of both ends; an End's own Netem replaces it there.
type TopoLink struct {
	A     End         `yaml:"a" json:"a"`
	B     End         `yaml:"b" json:"b"`
	MTU   int         `yaml:"mtu,omitempty" json:"mtu,omitempty"`
	Netem *netem.Spec `yaml:"netem,omitempty" json:"netem,omitempty"`
}

// End is one end of a TopoLink. Netem impairs this end's egress (one
// direction of the link).
type End struct {
	Pod    string      `yaml:"pod" json:"pod"`
	IfName string      `yaml:"ifname" json:"ifname"`
	IP     string      `yaml:"ip,omitempty" json:"ip,omitempty"`
	Netem  *netem.Spec `yaml:"netem,omitempty" json:"netem,omitempty"`
}

// ParseTopology decodes a topology (YAML or JSON); unknown and duplicate
// keys are errors. A scalar given for a string is taken as written: a pod
// named no or 0755 stays "no" and "0755".
func ParseTopology(data []byte) (*Topology, error) {
	t := &Topology{}
	if err := yaml.UnmarshalStrict(data, t); err != nil {
		return nil, &InputError{Reason: strings.ReplaceAll(err.Error(), "\n ", "")}
	}
	return t, nil
}

// ReadTopology reads and decodes a topology file.
func ReadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &InputError{Field: "--file", Value: path, Reason: err.Error()}
	}
	t, err := ParseTopology(data)
	if err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	return t, nil
}

// builder collects the pods of a topology while validating it.
type builder struct {
	ns, master string
	pods       map[string]*metadata.Pod
	order      []string
	// listed maps the pods of the pods list to their entry.
	listed map[string]string
	// ends maps pod/ifname to the field that used it.
	ends map[string]string
}

// Records validates the topology as the plugin would validate each pod's
// metadata (master is the master delegate's interface, e.g. eth0), plus
// the checks only a whole topology allows: a pod listed twice, an
// interface used by two links, a link whose ends clash. It returns one
// record per pod, in the order the topology first names them.
func (t *Topology) Records(master string) ([]Record, error) {
	pods, err := t.pods(master)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(pods))
	for _, p := range pods {
		r, err := recordOf(p, master, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// pods validates the topology and returns its pods, in the order it first
// names them, each with the links it declares and expects.
func (t *Topology) pods(master string) ([]*metadata.Pod, error) {
	b := &builder{ns: t.Namespace, master: master, pods: map[string]*metadata.Pod{},
		listed: map[string]string{}, ends: map[string]string{}}
	if b.ns == "" {
		b.ns = metadata.DefaultNamespace
	}
	if len(t.Pods) == 0 && len(t.Links) == 0 {
		return nil, &InputError{Field: "pods, links", Reason: "the topology names no pod"}
	}
	for i := range t.Pods {
		if err := b.pod(i, &t.Pods[i]); err != nil {
			return nil, err
		}
	}
	for i, l := range t.Links {
		f := endFields(fmt.Sprintf("links[%d]", i))
		if err := b.link(f, l); err != nil {
			return nil, err
		}
	}
	out := make([]*metadata.Pod, 0, len(b.order))
	for _, name := range b.order {
		p := b.pods[name]
		p.Primary = len(p.Links) > 0
		out = append(out, p)
	}
	return out, nil
}

// pod validates pods[i] and its own links.
func (b *builder) pod(i int, tp *TopoPod) error {
	prefix := fmt.Sprintf("pods[%d]", i)
	labels := map[string]string{
		metadata.KeyRatchet: "true", metadata.KeyPodName: tp.Name, metadata.KeyNamespace: b.ns,
		metadata.KeyTargetPod: tp.TargetPod, metadata.KeyTargetContainer: tp.TargetContainer, metadata.KeyPublicIP: tp.PublicIP,
	}
	p, err := metadata.Parse(labels, b.master)
	if err != nil {
		return fromMetadataError(err, podName(b.ns, tp.Name), func(k string) string {
			if k == metadata.KeyNamespace {
				return "namespace"
			}
			return prefix + "." + strings.TrimPrefix(strings.TrimPrefix(k, "ratchet."), "pod_")
		})
	}
	if prev, dup := b.listed[p.Name]; dup {
		return &InputError{Pod: podName(b.ns, p.Name), Field: prefix + ".name", Value: p.Name, Reason: "duplicate pod: also " + prev}
	}
	b.listed[p.Name] = prefix
	q := b.add(p.Name)
	q.TargetPod, q.TargetContainer, q.PublicIP = p.TargetPod, p.TargetContainer, p.PublicIP
	for j, l := range tp.Links {
		f := endFields(fmt.Sprintf("%s.links[%d]", prefix, j))
		f.aPod, f.aIf, f.aIP, f.aNetem = prefix+".name", f.prefix+".ifname", f.prefix+".ip", f.prefix+".local_netem"
		f.bPod, f.bIf, f.bIP, f.bNetem = f.prefix+".peer", f.prefix+".peer_ifname", f.prefix+".peer_ip", f.prefix+".peer_netem"
		tl := TopoLink{
			A:   End{Pod: tp.Name, IfName: l.IfName, IP: l.IP, Netem: l.LocalNetem},
			B:   End{Pod: l.Peer, IfName: l.PeerIfName, IP: l.PeerIP, Netem: l.PeerNetem},
			MTU: l.MTU, Netem: l.Netem,
		}
		if err := b.link(f, tl); err != nil {
			return err
		}
	}
	return nil
}

// linkFields names the topology fields of one link's values.
type linkFields struct {
	prefix, aPod, aIf, aIP, aNetem, bPod, bIf, bIP, bNetem, mtu, netem string
}

func endFields(prefix string) linkFields {
	return linkFields{
		prefix: prefix, aPod: prefix + ".a.pod", aIf: prefix + ".a.ifname", aIP: prefix + ".a.ip", aNetem: prefix + ".a.netem",
		bPod: prefix + ".b.pod", bIf: prefix + ".b.ifname", bIP: prefix + ".b.ip", bNetem: prefix + ".b.netem",
		mtu: prefix + ".mtu", netem: prefix + ".netem",
	}
}

// entryNetem maps the impairments of ratchet.links[0] to their fields.
func (f linkFields) entryNetem() map[string]string {
	return map[string]string{"netem": f.netem, "local_netem": f.aNetem, "peer_netem": f.bNetem}
}

// link validates one link, checks it against the others, and records it:
// declared by a's pod, expected (reversed) by b's.
func (b *builder) link(f linkFields, tl TopoLink) error {
	l, err := b.parseLink(f, tl)
	if err != nil {
		return err
	}
	if err := b.checkEnds(f, tl.A, tl.B); err != nil {
		return err
	}
	declarer, expecter := b.add(tl.A.Pod), b.add(tl.B.Pod)
	declarer.Links = append(declarer.Links, l)
	expecter.Expects = append(expecter.Expects, l.Reversed(tl.A.Pod))
	return nil
}

// parseLink validates a link as the plugin validates an entry of
// ratchet.links of a's pod (a.netem its local_netem, b.netem its
// peer_netem), and returns it normalised.
func (b *builder) parseLink(f linkFields, tl TopoLink) (metadata.Link, error) {
	a, z := tl.A, tl.B
	entry, err := json.Marshal([]metadata.Link{{Peer: z.Pod, IfName: a.IfName, IP: a.IP, PeerIfName: z.IfName, PeerIP: z.IP, MTU: tl.MTU,
		Netem: tl.Netem, LocalNetem: a.Netem, PeerNetem: z.Netem}})
	if err != nil {
		return metadata.Link{}, err
	}
	labels := map[string]string{
		metadata.KeyRatchet: "true", metadata.KeyPodName: a.Pod, metadata.KeyNamespace: b.ns, metadata.KeyLinks: string(entry),
	}
	p, err := metadata.Parse(labels, b.master)
	if err == nil {
		return p.Links[0], nil
	}
	rename := map[string]string{
		metadata.KeyPodName: f.aPod, metadata.KeyNamespace: "namespace", metadata.KeyLinks: f.prefix,
		"ratchet.links[0]": f.prefix, "ratchet.links[0].peer": f.bPod,
		"ratchet.links[0].ifname": f.aIf, "ratchet.links[0].ip": f.aIP,
		"ratchet.links[0].peer_ifname": f.bIf, "ratchet.links[0].peer_ip": f.bIP, "ratchet.links[0].mtu": f.mtu,
	}
	ie, ok := fromMetadataError(err, podName(b.ns, a.Pod), func(k string) string {
		if r, ok := rename[k]; ok {
			return r
		}
		// ratchet.links[0].netem[.field] and the like.
		obj, field, _ := strings.Cut(strings.TrimPrefix(k, "ratchet.links[0]."), ".")
		if r, ok := f.entryNetem()[obj]; ok {
			if field != "" {
				r += "." + field
			}
			return r
		}
		return k
	}).(*InputError)
	if !ok {
		return metadata.Link{}, err
	}
	if ie.Field == f.bIf || ie.Field == f.bIP || ie.Field == f.bNetem || strings.HasPrefix(ie.Field, f.bNetem+".") {
		ie.Pod = podName(b.ns, z.Pod)
	}
	ie.Reason = strings.ReplaceAll(ie.Reason, "ratchet.links[0].ip", f.aIP)
	return metadata.Link{}, ie
}

// checkEnds rejects a link whose interfaces another link uses. (Ends
// that clash with each other, such as the same address on both, were
// rejected by metadata.Parse in parseLink.)
func (b *builder) checkEnds(f linkFields, a, z End) error {
	for _, e := range []struct{ pod, ifname, field string }{{a.Pod, a.IfName, f.aIf}, {z.Pod, z.IfName, f.bIf}} {
		key := e.pod + "/" + e.ifname
		if prev, ok := b.ends[key]; ok {
			return &InputError{Pod: podName(b.ns, e.pod), Field: e.field, Value: e.ifname, Reason: "interface already used by " + prev}
		}
		b.ends[key] = e.field
	}
	return nil
}

// add returns the pod named name, adding it when new.
func (b *builder) add(name string) *metadata.Pod {
	if p, ok := b.pods[name]; ok {
		return p
	}
	p := &metadata.Pod{Name: name, Namespace: b.ns}
	b.pods[name] = p
	b.order = append(b.order, name)
	return p
}

// Select returns the record of the pod named name, or an InputError naming
// field when the records hold no such pod.
func Select(recs []Record, name, field string) ([]Record, error) {
	var names []string
	for _, r := range recs {
		if r.Name == name {
			return []Record{r}, nil
		}
		names = append(names, r.Name)
	}
	slices.Sort(names)
	return nil, &InputError{Field: field, Value: name, Reason: "unknown pod: not in the topology (its pods: " + strings.Join(names, ", ") + ")"}
}
