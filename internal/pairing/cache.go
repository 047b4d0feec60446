package pairing

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// cache is the agent's watched copy of the pod, link and announced records
// under the prefix, indexed so that one pod's picture costs what that pod
// has, not what its namespace holds. The Follower fills it (a list, then
// its watch); ADD, DEL and the reconcile loop read it once it is live, and
// fall back to reading etcd while it is not.
type cache struct {
	mu sync.Mutex
	// rev is the newest store revision folded in.
	rev int64
	// live: a full list was folded in and the watch after it runs.
	live bool
	// changed is closed (and replaced) whenever rev advances.
	changed chan struct{}
	spaces  map[string]*space
	// removed are link records deleted since the reconcile loop last
	// looked, by namespace (see noteRemoved).
	removed map[string][]store.LinkRecord
}

// space is one namespace's records.
type space struct {
	links     map[string]versioned[store.LinkRecord]
	pods      map[string]versioned[store.PodRecord]
	announced map[string]versioned[announcedRec]
	// byPod: pod name → the IDs of the links with an end on it.
	byPod map[string]map[string]bool
	// towards: pod name → the announced pods that declare a link to it.
	towards map[string]map[string]bool
}

func newCache() *cache {
	return &cache{changed: make(chan struct{}), spaces: map[string]*space{}}
}

func newSpace() *space {
	return &space{links: map[string]versioned[store.LinkRecord]{}, pods: map[string]versioned[store.PodRecord]{},
		announced: map[string]versioned[announcedRec]{}, byPod: map[string]map[string]bool{}, towards: map[string]map[string]bool{}}
}

// record kinds: the first segment after the prefix.
const (
	kindPods     = "pods"
	kindLinks    = "links"
	kindAnnounce = "announce"
)

// reset replaces the whole copy with kvs (a list of the pods, links and
// announced directories, taken at revision rev or later) and marks the
// copy live. It returns the link records the copy held that the list does
// not (deleted while no watch ran).
func (c *cache) reset(keys store.Keys, kvs []store.KV, rev int64) []store.LinkRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.spaces
	c.spaces = map[string]*space{}
	for _, kv := range kvs {
		c.fold(keys, store.Event{Type: store.Put, KV: kv})
	}
	var gone []store.LinkRecord
	for ns, s := range old {
		for id, l := range s.links {
			if n := c.spaces[ns]; n == nil || n.links[id].ver == 0 {
				gone = append(gone, l.val)
			}
		}
	}
	c.live = true
	c.advance(rev)
	return gone
}

// setLive says whether the watch after the last reset runs.
func (c *cache) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
}

// apply folds one watch event in.
func (c *cache) apply(keys store.Keys, ev store.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fold(keys, ev)
	c.advance(ev.KV.Version)
}

func (c *cache) advance(rev int64) {
	if rev > c.rev {
		c.rev = rev
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// fold applies ev to the namespace it is about; events outside the three
// record directories are ignored. A put older than what the copy holds,
// or a delete older than it, changes nothing (a list and the watch after
// it may overlap).
func (c *cache) fold(keys store.Keys, ev store.Event) {
	kind, ns, name, ok := splitKey(keys, ev.KV.Key)
	if !ok {
		return
	}
	s := c.spaces[ns]
	if s == nil {
		if ev.Type == store.Delete {
			return
		}
		s = newSpace()
		c.spaces[ns] = s
	}
	switch kind {
	case kindPods:
		foldRecord(s.pods, name, ev, func(kv store.KV) (store.PodRecord, bool) {
			var p store.PodRecord
			return p, store.Decode(kv, &p) == nil
		})
	case kindLinks:
		if old, ok := s.links[name]; ok {
			s.unindexLink(old.val)
		}
		foldRecord(s.links, name, ev, func(kv store.KV) (store.LinkRecord, bool) {
			var l store.LinkRecord
			return l, store.Decode(kv, &l) == nil && l.ID == name
		})
		if cur, ok := s.links[name]; ok {
			s.indexLink(cur.val)
		}
	case kindAnnounce:
		if old, ok := s.announced[name]; ok {
			s.unindexAnnounced(name, old.val.pod)
		}
		foldRecord(s.announced, name, ev, func(kv store.KV) (announcedRec, bool) {
			var a announcedRec
			if store.Decode(kv, &a.labels) != nil {
				return a, false
			}
			// A record that does not parse is its own pod's error: it is
			// kept with no pod, so that the key is known to exist.
			a.pod, _ = metadata.Parse(a.labels)
			return a, true
		})
		if cur, ok := s.announced[name]; ok {
			s.indexAnnounced(name, cur.val.pod)
		}
	}
}

// foldRecord applies ev to records[name]; decode turns a put's value into
// a record (false: undecodable, the key is dropped).
func foldRecord[T any](records map[string]versioned[T], name string, ev store.Event, decode func(store.KV) (T, bool)) {
	cur, had := records[name]
	if had && cur.ver >= ev.KV.Version {
		return
	}
	if ev.Type == store.Delete {
		delete(records, name)
		return
	}
	rec, ok := decode(ev.KV)
	if !ok {
		delete(records, name)
		return
	}
	records[name] = versioned[T]{rec, ev.KV.Version}
}

// announcedRec is an announced record: its labels, and the pod they make
// (nil: not a ratchet pod, or labels that do not parse).
type announcedRec struct {
	labels map[string]string
	pod    *metadata.Pod
}

// splitKey cuts <prefix>/<kind>/<ns>/<name> into its parts.
func splitKey(keys store.Keys, key string) (kind, ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(key, keys.Prefix+"/")
	if !ok {
		return "", "", "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || strings.Contains(parts[2], "/") {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

func (s *space) indexLink(l store.LinkRecord) {
	for _, pod := range []string{l.A.Pod, l.B.Pod} {
		if s.byPod[pod] == nil {
			s.byPod[pod] = map[string]bool{}
		}
		s.byPod[pod][l.ID] = true
	}
}

func (s *space) unindexLink(l store.LinkRecord) {
	for _, pod := range []string{l.A.Pod, l.B.Pod} {
		delete(s.byPod[pod], l.ID)
		if len(s.byPod[pod]) == 0 {
			delete(s.byPod, pod)
		}
	}
}

func (s *space) indexAnnounced(name string, p *metadata.Pod) {
	if p == nil {
		return
	}
	for _, l := range p.Links {
		if s.towards[l.Peer] == nil {
			s.towards[l.Peer] = map[string]bool{}
		}
		s.towards[l.Peer][name] = true
	}
}

func (s *space) unindexAnnounced(name string, p *metadata.Pod) {
	if p == nil {
		return
	}
	for _, l := range p.Links {
		delete(s.towards[l.Peer], name)
		if len(s.towards[l.Peer]) == 0 {
			delete(s.towards, l.Peer)
		}
	}
}

// offerLink folds in a link record the agent itself wrote at version ver,
// ahead of its watch event (see ownWrite).
func (c *cache) offerLink(ns string, rec store.LinkRecord, ver int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.ownWrite(ns, ver)
	if s == nil {
		return
	}
	if old, ok := s.links[rec.ID]; ok {
		if old.ver >= ver {
			return
		}
		s.unindexLink(old.val)
	}
	s.links[rec.ID] = versioned[store.LinkRecord]{rec, ver}
	s.indexLink(rec)
}

// offerPod is offerLink for a pod record.
func (c *cache) offerPod(ns string, rec store.PodRecord, ver int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.ownWrite(ns, ver)
	if s == nil {
		return
	}
	if old, ok := s.pods[rec.Name]; ok && old.ver >= ver {
		return
	}
	s.pods[rec.Name] = versioned[store.PodRecord]{rec, ver}
}

// ownWrite returns the records of namespace ns that take a write of the
// agent's own at version ver, or nil. A write is taken only while the copy
// is live and has not folded revision ver yet: then nothing newer about
// the key (a later write, its delete) can be in the copy. The copy's
// revision does not move (what lies before ver is still to come). Called
// with c.mu held.
func (c *cache) ownWrite(ns string, ver int64) *space {
	if !c.live || c.rev >= ver {
		return nil
	}
	s := c.spaces[ns]
	if s == nil {
		s = newSpace()
		c.spaces[ns] = s
	}
	return s
}

// maxRemoved bounds the deleted link records a namespace keeps for the
// reconcile loop (see noteRemoved); older ones are forgotten.
const maxRemoved = 4096

// noteRemoved keeps a deleted link record until the reconcile loop takes it
// (takeRemoved) to remove the ends its pods on this host still hold.
func (c *cache) noteRemoved(ns string, rec store.LinkRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed == nil {
		c.removed = map[string][]store.LinkRecord{}
	}
	r := append(c.removed[ns], rec)
	if len(r) > maxRemoved {
		r = r[len(r)-maxRemoved:]
	}
	c.removed[ns] = r
}

// takeRemoved returns and forgets the deleted link records of ns.
func (c *cache) takeRemoved(ns string) []store.LinkRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.removed[ns]
	delete(c.removed, ns)
	return r
}

// await waits until the copy is live and has folded in revision rev, for
// as long as ctx lasts. It reports whether it has.
func (c *cache) await(ctx context.Context, rev int64) bool {
	return c.awaitThat(ctx, func() bool { return c.rev >= rev })
}

// awaitGone waits until the copy is live and has folded in the end of the
// pod record ns/name of version ver (its delete, or a newer incarnation's
// record), for as long as ctx lasts. It reports whether it has.
func (c *cache) awaitGone(ctx context.Context, ns, name string, ver int64) bool {
	return c.awaitThat(ctx, func() bool {
		if c.rev < ver {
			return false
		}
		s := c.spaces[ns]
		if s == nil {
			return true
		}
		p, ok := s.pods[name]
		return !ok || p.ver > ver
	})
}

// awaitThat waits until the copy is live and cond, called under the lock,
// holds.
func (c *cache) awaitThat(ctx context.Context, cond func() bool) bool {
	for {
		c.mu.Lock()
		ok, ch := c.live && cond(), c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// isLive reports whether the copy is live now.
func (c *cache) isLive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// view returns the picture of namespace ns that pods need: the links with
// an end on one of them, and the records of those pods, of the other ends
// of those links, and of also. Its revision is the copy's.
func (c *cache) view(ns string, pods, also []string) *view {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := &view{ns: ns, rev: c.rev, links: map[string]versioned[store.LinkRecord]{}, pods: map[string]versioned[store.PodRecord]{},
		more: c, dropped: map[string]bool{}}
	s := c.spaces[ns]
	if s == nil {
		return v
	}
	addPod := func(name string) {
		if p, ok := s.pods[name]; ok {
			v.pods[name] = p
		}
	}
	for _, pod := range pods {
		addPod(pod)
		for id := range s.byPod[pod] {
			l := s.links[id]
			v.links[id] = l
			addPod(l.val.A.Pod)
			addPod(l.val.B.Pod)
		}
	}
	for _, name := range also {
		addPod(name)
	}
	return v
}

// link returns the copy's record of link ns/id.
func (c *cache) link(ns, id string) (versioned[store.LinkRecord], bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.spaces[ns]; s != nil {
		l, ok := s.links[id]
		return l, ok
	}
	return versioned[store.LinkRecord]{}, false
}

// pod returns the copy's record of pod ns/name.
func (c *cache) pod(ns, name string) (versioned[store.PodRecord], bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.spaces[ns]; s != nil {
		p, ok := s.pods[name]
		return p, ok
	}
	return versioned[store.PodRecord]{}, false
}

// localPods lists the pods of ns recorded on host.
func (c *cache) localPods(ns, host string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.spaces[ns]
	if s == nil {
		return nil
	}
	var out []string
	for name, p := range s.pods {
		if p.val.Host == host {
			out = append(out, name)
		}
	}
	return out
}

// towards returns, seen from pod, the links that the announced records of
// the other pods of ns declare towards it (see announcedTowards), leaving
// out the records of pods another source describes (announcedCounts).
func (c *cache) towards(ns, pod string) []metadata.Link {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.spaces[ns]
	if s == nil {
		return nil
	}
	names := slices.Sorted(maps.Keys(s.towards[pod]))
	others := make([]*metadata.Pod, 0, len(names))
	for _, name := range names {
		if p, ok := s.pods[name]; !announcedCounts(p.val.Source, ok) {
			continue // described by another source (announcedCounts)
		}
		others = append(others, s.announced[name].val.pod)
	}
	return linksTowards(pod, others)
}

// announcedLabels returns the labels announced for ns/name, and whether
// there is such a record.
func (c *cache) announcedLabels(ns, name string) (map[string]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.spaces[ns]
	if s == nil {
		return nil, false
	}
	a, ok := s.announced[name]
	return maps.Clone(a.val.labels), ok
}

// announcedPod returns the pod announced as ns/name (nil when there is no
// such record or it makes no ratchet pod), and whether there is a record.
func (c *cache) announcedPod(ns, name string) (*metadata.Pod, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.spaces[ns]
	if s == nil {
		return nil, false
	}
	a, ok := s.announced[name]
	return a.val.pod, ok
}

// summary lists the links with an end recorded on host (see
// Manager.Links).
func (c *cache) summary(host string) []LinkSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return nil
	}
	var out []LinkSummary
	for ns, s := range c.spaces {
		for _, l := range s.links {
			sum := LinkSummary{Namespace: ns, State: l.val.State, Down: l.val.IsDown()}
			local := false
			for _, end := range []store.LinkEnd{l.val.A, l.val.B} {
				p, ok := s.pods[end.Pod]
				if !ok || p.val.Host != host {
					continue
				}
				local = true
				if end.Netem != nil && !end.Netem.IsZero() {
					sum.Impaired++
					if strings.Contains(end.Applied, "not applied") || end.Applied == "" {
						sum.NotApplied++
					}
				}
			}
			if local {
				out = append(out, sum)
			}
		}
	}
	return out
}
