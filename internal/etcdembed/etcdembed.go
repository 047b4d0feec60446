// Package etcdembed runs a single-node etcd inside the process, with the v2
// API enabled, for ratchet's tests and demo: no external etcd needed.
package etcdembed

import (
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// ReadyTimeout bounds how long Start waits for the server to be ready.
const ReadyTimeout = 20 * time.Second

// Start runs etcd with its data in dir, serving clients at clientURL and
// peers at peerURL (both http://127.0.0.1:PORT), and waits until it is
// ready. Close the returned server to stop it.
func Start(name, dir, clientURL, peerURL string) (*embed.Etcd, error) {
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
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-srv.Server.ReadyNotify():
		return srv, nil
	case <-time.After(ReadyTimeout):
		srv.Close()
		return nil, fmt.Errorf("embedded etcd not ready after %s", ReadyTimeout)
	}
}
