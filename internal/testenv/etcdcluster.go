package testenv

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/ratchet-cni/ratchet/internal/etcdembed"
	"github.com/ratchet-cni/ratchet/internal/nsproxy"
)

// EtcdCluster is an embedded etcd of several members (v2 and v3 APIs) in
// the test process, each on free loopback ports with its own data
// directory, so that a test can stop and restart single members. Clients
// reach a member through a relay that Stop cuts first, so that a stopped
// member drops its clients at once, as a crashed one does (embed's own
// graceful close keeps watches and long polls open for seconds).
type EtcdCluster struct {
	// URLs are the members' client URLs, in member order.
	URLs []string

	t       testing.TB
	token   string
	initial string
	mu      sync.Mutex
	members []*etcdMember
}

type etcdMember struct {
	name, dir string
	// client is the member's own listener; relay, at URLs[i], forwards to it.
	client url.URL
	peer   url.URL
	relay  *cutRelay
	srv    *embed.Etcd
}

// StartEtcdCluster starts an n-member embedded etcd, waits until it has a
// leader, and stops it when the test ends.
func StartEtcdCluster(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	c := &EtcdCluster{t: t, token: UniqueName("rtc-")}
	var peers []string
	for i := range n {
		m := &etcdMember{name: fmt.Sprintf("m%d", i), dir: t.TempDir()}
		m.client = url.URL{Scheme: "http", Host: freeAddr(t)}
		m.peer = url.URL{Scheme: "http", Host: freeAddr(t)}
		m.relay = &cutRelay{addr: freeAddr(t), target: m.client.Host}
		c.members = append(c.members, m)
		c.URLs = append(c.URLs, "http://"+m.relay.addr)
		peers = append(peers, m.name+"="+m.peer.String())
	}
	c.initial = strings.Join(peers, ",")
	t.Cleanup(func() {
		for i := range c.members {
			c.Stop(i)
		}
	})
	// Members of a new cluster only become ready together: start them all,
	// then wait for each.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range c.members {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.start(i) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("etcd member %d: %v", i, err)
		}
	}
	return c
}

func (c *EtcdCluster) start(i int) error {
	m := c.members[i]
	cfg, err := etcdembed.Config(m.name, m.dir, m.client.String(), m.peer.String())
	if err != nil {
		return err
	}
	cfg.InitialCluster = c.initial
	cfg.InitialClusterToken = c.token
	srv, err := etcdembed.Run(cfg)
	if err != nil {
		return err
	}
	if err := m.relay.open(); err != nil {
		srv.Close()
		return fmt.Errorf("etcd member %s: %w", m.name, err)
	}
	c.mu.Lock()
	m.srv = srv
	c.mu.Unlock()
	return nil
}

// Stop stops member i (idempotent): its clients are cut off at once, then
// the server stops (a leader hands its leadership over first, as etcd does
// on shutdown). Its data stays until the test ends.
func (c *EtcdCluster) Stop(i int) {
	c.mu.Lock()
	m := c.members[i]
	srv := m.srv
	m.srv = nil
	c.mu.Unlock()
	m.relay.cut()
	if srv != nil {
		srv.Close()
	}
}

// Restart starts member i again on the same ports with the same data.
func (c *EtcdCluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	if err := c.start(i); err != nil {
		c.t.Fatal(err)
	}
}

// Leader returns the index of the member that leads, as a running member
// sees it, or -1 when no running member knows a leader.
func (c *EtcdCluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if m.srv == nil {
			continue
		}
		lead := m.srv.Server.Leader()
		for j, o := range c.members {
			if o.srv != nil && o.srv.Server.ID() == lead {
				return j
			}
		}
	}
	return -1
}

// cutRelay relays connections from addr to target until cut, which closes
// the listener and every relayed connection, as a crashed member would.
type cutRelay struct {
	addr, target string
	mu           sync.Mutex
	p            *nsproxy.Proxy
}

func (r *cutRelay) open() error {
	p, err := nsproxy.Listen(r.addr, r.target)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.p = p
	r.mu.Unlock()
	return nil
}

func (r *cutRelay) cut() {
	r.mu.Lock()
	p := r.p
	r.p = nil
	r.mu.Unlock()
	if p != nil {
		p.Close()
	}
}
