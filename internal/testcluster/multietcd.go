package testcluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// MultiEtcd is a Cluster on an etcd of several members that the test
// started itself (testenv.StartEtcdCluster): every member's client URL is
// forwarded into every host, and the netconfs of its pods name them all.
// Its Etcd is nil: the test stops and restarts members on its own handle.
type MultiEtcd struct {
	*Cluster
	// Endpoints[i] are the members' client URLs as seen from inside
	// Hosts[i], in member order.
	Endpoints [][]string
}

// NewWithEtcd is New on an etcd the test started, given by its members'
// client URLs (in the test process's netns).
func NewWithEtcd(t testing.TB, api string, nHosts int, endpoints []string) *MultiEtcd {
	t.Helper()
	testenv.RequireRoot(t)
	if len(endpoints) == 0 {
		t.Fatal("NewWithEtcd: no endpoints")
	}
	c := newBase(t, api, endpoints)
	m := &MultiEtcd{Cluster: c}
	t.Cleanup(c.KillAgents)
	// AddHost forwards c.Etcd.URL as the host's EtcdURL: the first member,
	// through a stand-in that lives only while the hosts are made.
	c.Etcd = &testenv.Etcd{URL: endpoints[0]}
	defer func() { c.Etcd = nil }()
	for i := range nHosts {
		h := c.AddHost(i)
		eps := []string{h.EtcdURL}
		for _, ep := range endpoints[1:] {
			f := h.NS.Forward(t, strings.TrimPrefix(ep, "http://"))
			eps = append(eps, "http://"+f.Addr)
		}
		m.Endpoints = append(m.Endpoints, eps)
	}
	return m
}

// NewPod is h.NewPod with a netconf naming every etcd member.
func (m *MultiEtcd) NewPod(h *Host, name string) *Pod {
	m.t.Helper()
	i := slices.Index(m.Hosts, h)
	if i < 0 {
		m.t.Fatal(fmt.Sprintf("host %s is not in the cluster", h.Name))
	}
	p := h.NewPod(name)
	p.Reconfigure(func(conf map[string]any) {
		conf["etcd"].(map[string]any)["endpoints"] = m.Endpoints[i]
	})
	return p
}
