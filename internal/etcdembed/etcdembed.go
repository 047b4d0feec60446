// Package etcdembed runs a single-node etcd inside the process, with the v2
// API enabled, for ratchet's tests and demo: no external etcd needed.
package etcdembed

import (
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// ReadyTimeout bounds how long Run waits for the server to be ready (a
// member of a cluster is ready once the cluster has a leader).
const ReadyTimeout = 30 * time.Second

// Start runs a single-node etcd with its data in dir, serving clients at
// clientURL and peers at peerURL (http://127.0.0.1:PORT), and waits until
// it is ready. Close the returned server to stop it.
func Start(name, dir, clientURL, peerURL string) (*embed.Etcd, error) {
	cfg, err := Config(name, dir, clientURL, peerURL)
	if err != nil {
		return nil, err
	}
	return Run(cfg)
}

// Config is the configuration of one embedded member: data in dir, clients
// at clientURL, peers at peerURL, the v2 API enabled, quiet logs, and a
// cluster of this member alone (callers set InitialCluster for more, or TLS).
func Config(name, dir, clientURL, peerURL string) (*embed.Config, error) {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.EnableV2 = true
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	client, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("etcd client URL: %w", err)
	}
	peer, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd peer URL: %w", err)
	}
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	return cfg, nil
}

// Run starts a configured member and waits, at most ReadyTimeout, until it
// is ready.
func Run(cfg *embed.Config) (*embed.Etcd, error) {
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd %s: %w", cfg.Name, err)
	}
	select {
	case <-srv.Server.ReadyNotify():
		return srv, nil
	case <-time.After(ReadyTimeout):
		srv.Close()
		return nil, fmt.Errorf("embedded etcd %s not ready after %s", cfg.Name, ReadyTimeout)
	}
}
