package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
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
		IdleConnTimeout:     30 * time.Second,
	}
}

// serverVersion asks an endpoint's /version (served by every etcd, whatever
// its APIs) and returns the etcdserver version, "" when the endpoint does
// not answer like etcd, and the error when it cannot be asked.
func serverVersion(ctx context.Context, tr http.RoundTripper, endpoint string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(endpoint, "/")+"/version", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", err
	}
	var v struct {
		Server string `json:"etcdserver"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", nil
	}
	return v.Server, nil
}

// isTLSProblem reports whether err is a TLS failure (untrusted or mismatched
// certificate, a client certificate refused, TLS spoken to plain HTTP): a
// configuration error, not an outage.
func isTLSProblem(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
		ae tls.AlertError
		rh tls.RecordHeaderError
	)
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" { // an alert from the server
		return true
	}
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) ||
		errors.As(err, &ci) || errors.As(err, &ae) || errors.As(err, &rh)
}

// tlsFailure is the error for a TLS failure talking to endpoints.
func tlsFailure(endpoints []string, err error) error {
	return fmt.Errorf("etcd at %s: TLS failure (check etcd.tls and the URL scheme): %w",
		strings.Join(endpoints, ","), err)
}
