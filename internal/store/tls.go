package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// tlsConfig builds the client TLS configuration from the CA, Cert and Key
// files; nil when none is set and no endpoint is https.
func tlsConfig(cfg Config) (*tls.Config, error) {
	https := false
	for _, ep := range cfg.Endpoints {
		https = https || strings.HasPrefix(ep, "https://")
	}
	if cfg.CA == "" && cfg.Cert == "" && cfg.Key == "" && !https {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd.tls.ca %s: no PEM certificate found", cfg.CA)
		}
		tc.RootCAs = pool
	}
	if (cfg.Cert == "") != (cfg.Key == "") {
		return nil, fmt.Errorf("etcd.tls: cert and key must be set together")
	}
	if cfg.Cert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd.tls.cert/key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// httpTransport is the HTTP transport of the v2 client and of the version
// probe: dial and TLS handshake bounded by timeout.
func httpTransport(tc *tls.Config, timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // etcd is never reached through an HTTP proxy
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
}

// serverVersion asks an endpoint's /version (served by every etcd, whatever
// its APIs) and returns the etcdserver version, or "" when the endpoint
// does not answer like etcd.
func serverVersion(ctx context.Context, tr http.RoundTripper, endpoint string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(endpoint, "/")+"/version", nil)
	if err != nil {
		return ""
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	var v struct {
		Server string `json:"etcdserver"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.Server
}
