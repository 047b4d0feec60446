package pairing

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// fakeIface is an interface in a fakeWire netns.
type fakeIface struct {
	kind  string // "veth", "vxlan", or another plugin's ("foreign")
	ours  bool
	owner string
	addrs []string
	mtu   int
	vni   int
	// peer is the other end of a veth: netns and name.
	peerNS, peerName string
	// down: set down; netem: the impairment on it (JSON, "" none).
	down   bool
	netem  string
	remote net.IP
}

// fakeWire is the kernel of the root-free tests: a netns is a temp file
// (its inode identifies it, as a real netns path's does), its interfaces a
// map. It refuses what the kernel refuses: a taken name, a netns that is
// gone.
type fakeWire struct {
	mu    sync.Mutex
	nets  map[string]map[string]*fakeIface
	calls int
	// failVeth, when set, fails every VethPair with it.
	failVeth error
	// repoints counts the vxlan ends re-pointed in place, unparks the veth
	// ends given back; parked are the parked veth ends by link.
	repoints, unparks int
	parked            map[string]*fakeIface
	// stitched are the host vxlans carrying parked ends across hosts, by
	// link; stitches counts Stitch calls that changed something.
	stitched map[string]wiring.VxlanOptions
	stitches int
}

func newFakeWire() *fakeWire {
	return &fakeWire{nets: map[string]map[string]*fakeIface{}, parked: map[string]*fakeIface{}, stitched: map[string]wiring.VxlanOptions{}}
}

// netns makes a new fake netns under dir.
func (w *fakeWire) netns(dir, name string) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		panic(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nets[path] = map[string]*fakeIface{}
	return path
}

// dropNetns deletes a fake netns: its veths take their peers along.
func (w *fakeWire) dropNetns(path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name := range w.nets[path] {
		w.delLocked(path, name)
	}
	delete(w.nets, path)
	_ = os.Remove(path)
}

// foreign puts an interface ratchet did not make into a netns.
func (w *fakeWire) foreign(netns, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nets[netns][name] = &fakeIface{kind: "foreign"}
}

// readdress changes an interface's addresses behind ratchet's back.
func (w *fakeWire) readdress(netns, name string, addrs ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nets[netns][name].addrs = addrs
}

// get returns a copy of an interface, if it exists.
func (w *fakeWire) get(netns, name string) (fakeIface, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, ok := w.nets[netns][name]
	if !ok {
		return fakeIface{}, false
	}
	return *i, true
}

// names lists the interfaces of a netns.
func (w *fakeWire) names(netns string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for n := range w.nets[netns] {
		out = append(out, n)
	}
	return out
}

func (w *fakeWire) ns(path string) (map[string]*fakeIface, error) {
	n, ok := w.nets[path]
	if !ok {
		return nil, fmt.Errorf("netns %s: %w", path, wiring.ErrNetnsGone)
	}
	return n, nil
}

func newIface(kind string, ep wiring.Endpoint) *fakeIface {
	return &fakeIface{kind: kind, ours: true, owner: ep.Owner, addrs: ep.Addresses, mtu: ep.MTU}
}

func (w *fakeWire) VethPair(_ context.Context, a, b wiring.Endpoint) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.failVeth != nil {
		return w.failVeth
	}
	na, err := w.ns(a.Netns)
	if err != nil {
		return err
	}
	nb, err := w.ns(b.Netns)
	if err != nil {
		return err
	}
	if _, ok := na[a.Name]; ok {
		return fmt.Errorf("%s: %w", a, wiring.ErrExists)
	}
	if _, ok := nb[b.Name]; ok {
		return fmt.Errorf("%s: %w", b, wiring.ErrExists)
	}
	ia, ib := newIface("veth", a), newIface("veth", b)
	ia.peerNS, ia.peerName, ib.peerNS, ib.peerName = b.Netns, b.Name, a.Netns, a.Name
	na[a.Name], nb[b.Name] = ia, ib
	return nil
}

func (w *fakeWire) Vxlan(_ context.Context, ep wiring.Endpoint, opts wiring.VxlanOptions) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	n, err := w.ns(ep.Netns)
	if err != nil {
		return err
	}
	if _, ok := n[ep.Name]; ok {
		return fmt.Errorf("%s: %w", ep, wiring.ErrExists)
	}
	i := newIface("vxlan", ep)
	i.vni, i.remote = opts.VNI, opts.Remote
	n[ep.Name] = i
	return nil
}

func (w *fakeWire) delLocked(netns, name string) {
	i, ok := w.nets[netns][name]
	if !ok {
		return
	}
	delete(w.nets[netns], name)
	switch {
	case i.peerNS == "" && i.peerName != "":
		delete(w.parked, i.owner) // a veth whose other end is parked
	case i.peerName != "":
		delete(w.nets[i.peerNS], i.peerName)
	}
}

func (w *fakeWire) Remove(_ context.Context, netns, name, owner string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, ok := w.nets[netns][name]
	if !ok {
		return nil
	}
	if !i.ours || i.owner != owner {
		info := &wiring.LinkInfo{Kind: i.kind, Ours: i.ours, Owner: i.owner}
		return fmt.Errorf("%s in netns %s is %s: %w", name, netns, wiring.Holder(info), wiring.ErrNotOwned)
	}
	w.delLocked(netns, name)
	return nil
}

func (w *fakeWire) RemoveLinks(_ context.Context, netns string, names []string) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, name := range names {
		if i, ok := w.nets[netns][name]; ok && i.ours {
			w.delLocked(netns, name)
			n++
		}
	}
	return n, nil
}

func (w *fakeWire) Lookup(_ context.Context, netns, name string) (*wiring.LinkInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.ns(netns)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, wiring.ErrNotFound)
	}
	i, ok := n[name]
	if !ok {
		return nil, fmt.Errorf("%s in netns %s: %w", name, netns, wiring.ErrNotFound)
	}
	mtu := i.mtu
	if mtu == 0 {
		mtu = wiring.DefaultVethMTU
	}
	return &wiring.LinkInfo{Name: name, Kind: i.kind, MTU: mtu, Addresses: i.addrs, AdminUp: !i.down,
		VNI: i.vni, Remote: i.remote, Ours: i.ours, Owner: i.owner}, nil
}

// fakeApplied is how the fake kernel applies any impairment: like this
// project's kernel, everything but delay.
const fakeApplied = "tbf+bpf"

func (w *fakeWire) iface(netns, name string) (*fakeIface, error) {
	n, err := w.ns(netns)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, wiring.ErrNotFound)
	}
	i, ok := n[name]
	if !ok {
		return nil, fmt.Errorf("%s in netns %s: %w", name, netns, wiring.ErrNotFound)
	}
	return i, nil
}

func (w *fakeWire) Repoint(_ context.Context, netns, name, owner string, remote net.IP) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, err := w.iface(netns, name)
	if err != nil {
		return err
	}
	if !i.ours || i.owner != owner || i.kind != "vxlan" {
		return fmt.Errorf("%s: %w", name, wiring.ErrNotOwned)
	}
	i.remote = remote
	w.repoints++
	return nil
}

// Park moves veth ends to the fake host netns (the agent's) under their
// parked names; their peers stay.
func (w *fakeWire) Park(_ context.Context, netns string, ends []wiring.ParkEnd) []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	errs := make([]error, len(ends))
	for k, e := range ends {
		i, err := w.iface(netns, e.Name)
		if err != nil {
			errs[k] = err
			continue
		}
		if !i.ours || i.owner != e.Owner || i.kind != "veth" {
			errs[k] = fmt.Errorf("%s: %w", e.Name, wiring.ErrNotOwned)
			continue
		}
		delete(w.nets[netns], e.Name)
		i.down = true
		w.parked[e.Owner] = i
		if peer, ok := w.nets[i.peerNS][i.peerName]; ok {
			peer.peerNS, peer.peerName = "", wiring.ParkedName(e.Owner)
		}
	}
	return errs
}

// Unpark gives the parked end of ep.Owner to ep's netns.
func (w *fakeWire) Unpark(_ context.Context, ep wiring.Endpoint) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, ok := w.parked[ep.Owner]
	if !ok {
		return fmt.Errorf("parked end of %s: %w", ep.Owner, wiring.ErrNotFound)
	}
	n, err := w.ns(ep.Netns)
	if err != nil {
		return err
	}
	if _, taken := n[ep.Name]; taken {
		return fmt.Errorf("%s: %w", ep, wiring.ErrExists)
	}
	delete(w.parked, ep.Owner)
	delete(w.stitched, ep.Owner)
	i.down, i.addrs = false, ep.Addresses
	n[ep.Name] = i
	if peer, ok := w.nets[i.peerNS][i.peerName]; ok {
		peer.peerNS, peer.peerName = ep.Netns, ep.Name
	}
	w.unparks++
	return nil
}

// Stitch carries the parked end of owner over a host vxlan, as
// wiring.Stitch: it needs the parked end, and re-points in place.
func (w *fakeWire) Stitch(_ context.Context, owner string, _ int, opts wiring.VxlanOptions) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, ok := w.parked[owner]
	if !ok {
		return fmt.Errorf("parked end of %s: %w", owner, wiring.ErrNotFound)
	}
	if old, ok := w.stitched[owner]; ok && old.VNI == opts.VNI && old.Remote.Equal(opts.Remote) {
		return nil
	}
	i.down = false
	w.stitched[owner] = opts
	w.stitches++
	return nil
}

func (w *fakeWire) Unstitch(_ context.Context, owner string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.stitched, owner)
	if i, ok := w.parked[owner]; ok {
		i.down = true
	}
	return nil
}

func (w *fakeWire) CheckStitch(_ context.Context, owner string, opts wiring.VxlanOptions) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	got, ok := w.stitched[owner]
	switch {
	case !ok:
		return fmt.Errorf("no host vxlan for %s: %w", owner, wiring.ErrNotFound)
	case got.VNI != opts.VNI || !got.Remote.Equal(opts.Remote):
		return fmt.Errorf("host vxlan of %s: VNI %d to %v, want VNI %d to %v", owner, got.VNI, got.Remote, opts.VNI, opts.Remote)
	}
	return nil
}

func (w *fakeWire) SetAdmin(_ context.Context, netns, name, owner string, up bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, err := w.iface(netns, name)
	if err != nil {
		return err
	}
	if !i.ours || i.owner != owner {
		return fmt.Errorf("%s: %w", name, wiring.ErrNotOwned)
	}
	i.down = !up
	return nil
}

func (w *fakeWire) Impair(_ context.Context, netns, name string, s *netem.Spec) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, err := w.iface(netns, name)
	if err != nil {
		return "", err
	}
	i.netem = ""
	if s == nil || s.IsZero() {
		return "", nil
	}
	b, _ := json.Marshal(s)
	i.netem = string(b)
	if s.Delay != "" {
		return fakeApplied + "; not applied: delay: kernel has no sch_netem", nil
	}
	return fakeApplied, nil
}

func (w *fakeWire) CheckImpair(_ context.Context, netns, name string, s *netem.Spec) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, err := w.iface(netns, name)
	if err != nil {
		return err
	}
	want := ""
	if s != nil && !s.IsZero() {
		b, _ := json.Marshal(s)
		want = string(b)
	}
	if i.netem != want {
		return fmt.Errorf("impairment %q, want %q", i.netem, want)
	}
	return nil
}

// labelSource is a metadata source of fixed labels per container ID.
type labelSource struct {
	mu     sync.Mutex
	labels map[string]map[string]string
}

func (s *labelSource) Name() string { return "test" }

func (s *labelSource) set(containerID string, labels map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.labels[containerID] = labels
}

func (s *labelSource) Labels(_ context.Context, q metadata.Query) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.labels[q.ContainerID]
	if !ok {
		return nil, metadata.ErrNoMetadata
	}
	return l, nil
}
