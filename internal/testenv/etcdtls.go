package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/ratchet-cni/ratchet/internal/etcdembed"
)

// EtcdTLS is an embedded single-node etcd that serves clients over mutual
// TLS only and has v3 authentication enabled, with a root user (the v2 API
// is served too, without auth). Make users for a test with AddUser.
type EtcdTLS struct {
	// URL is the https client URL.
	URL string
	// CA, Cert and Key are PEM files: the CA that signed the server and
	// client certificates, and a client certificate (CN "ratchet-client",
	// not a user) with its key.
	CA, Cert, Key string
	// RootPassword is the password of the "root" user.
	RootPassword string
}

// StartEtcdTLS generates a CA, a server certificate for 127.0.0.1 and a
// client certificate into t.TempDir(), starts the server (client
// certificates required) and enables auth. It stops when the test ends.
func StartEtcdTLS(t testing.TB) *EtcdTLS {
	t.Helper()
	dir := t.TempDir()
	e := &EtcdTLS{RootPassword: UniqueName("root-")}
	var err error
	if e.CA, e.Cert, e.Key, err = writeTestPKI(dir); err != nil {
		t.Fatalf("test PKI: %v", err)
	}
	_, e.URL = startOnFreePorts(t, dir, "https", func(cfg *embed.Config) {
		cfg.ClientTLSInfo = transport.TLSInfo{
			CertFile:       filepath.Join(dir, "server.pem"),
			KeyFile:        filepath.Join(dir, "server-key.pem"),
			TrustedCAFile:  e.CA,
			ClientCertAuth: true,
		}
		cfg.BcryptCost = 4  // bcrypt.MinCost: keep Authenticate fast in tests
		cfg.EnableV2 = true // v2 keys over TLS; v3 auth does not cover v2
	})
	e.enableAuth(t)
	return e
}

// EtcdV3Only is an embedded etcd that serves the v3 API only, as etcd 3.6+.
type EtcdV3Only struct {
	// URL is the http client URL.
	URL string
}

// StartEtcdV3Only starts an embedded etcd without the v2 API and stops it
// when the test ends.
func StartEtcdV3Only(t testing.TB) *EtcdV3Only {
	t.Helper()
	_, url := startOnFreePorts(t, t.TempDir(), "http", func(cfg *embed.Config) { cfg.EnableV2 = false })
	return &EtcdV3Only{URL: url}
}

// Client returns a v3 client over TLS authenticated as user, closed when
// the test ends.
func (e *EtcdTLS) Client(t testing.TB, user, password string) *clientv3.Client {
	t.Helper()
	tc, err := (transport.TLSInfo{CertFile: e.Cert, KeyFile: e.Key, TrustedCAFile: e.CA}).ClientConfig()
	if err != nil {
		t.Fatalf("client TLS: %v", err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{e.URL}, TLS: tc, DialTimeout: 5 * time.Second,
		Username: user, Password: password, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client as %q: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// AddUser creates user with password and a role of the same name that may
// read and write every key starting with prefix.
func (e *EtcdTLS) AddUser(t testing.TB, user, password, prefix string) {
	t.Helper()
	c := e.Client(t, "root", e.RootPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := c.UserAdd(ctx, user, password); return err },
		func() error { _, err := c.RoleAdd(ctx, user); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := c.UserGrantRole(ctx, user, user); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("add etcd user %q (step %d): %v", user, i, err)
		}
	}
}

// enableAuth makes the root user and turns authentication on.
func (e *EtcdTLS) enableAuth(t testing.TB) {
	t.Helper()
	c := e.Client(t, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.UserAdd(ctx, "root", e.RootPassword); err != nil {
		t.Fatalf("etcd user add root: %v", err)
	}
	if _, err := c.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatalf("etcd grant root: %v", err)
	}
	if _, err := c.AuthEnable(ctx); err != nil {
		t.Fatalf("etcd auth enable: %v", err)
	}
}

// startOnFreePorts starts a single-node etcd with its data in dir, clients
// on scheme://127.0.0.1:<free port>, configured further by tune, and stops
// it when the test ends. A free port can be taken between the probe and the
// bind (by any process's outgoing connection), so that is tried again.
func startOnFreePorts(t testing.TB, dir, scheme string, tune func(*embed.Config)) (*embed.Etcd, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		clientURL := scheme + "://" + freeAddr(t)
		cfg := embedConfig(t, filepath.Join(dir, fmt.Sprint("data", attempt)), clientURL)
		tune(cfg)
		srv, err := etcdembed.Run(cfg)
		if err == nil {
			t.Cleanup(srv.Close)
			return srv, clientURL
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

// embedConfig is the single-node configuration of the embedded servers of
// this file: data in dataDir, clients on clientURL, peers on a free port.
func embedConfig(t testing.TB, dataDir, clientURL string) *embed.Config {
	t.Helper()
	cfg, err := etcdembed.Config("ratchet-test", dataDir, clientURL, "http://"+freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.EnableV2 = false // each caller says which APIs it serves
	return cfg
}

// writeTestPKI writes ca.pem, server.pem/server-key.pem (127.0.0.1) and
// client.pem/client-key.pem into dir.
func writeTestPKI(dir string) (ca, cert, key string, err error) {
	caTmpl := certTemplate("ratchet-test-ca")
	caTmpl.IsCA, caTmpl.BasicConstraintsValid = true, true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	caCert, caKey, err := issue(dir, "ca", caTmpl, nil, nil)
	if err != nil {
		return "", "", "", err
	}
	srvTmpl := certTemplate("127.0.0.1")
	srvTmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	srvTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if _, _, err := issue(dir, "server", srvTmpl, caCert, caKey); err != nil {
		return "", "", "", err
	}
	cliTmpl := certTemplate("ratchet-client")
	cliTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if _, _, err := issue(dir, "client", cliTmpl, caCert, caKey); err != nil {
		return "", "", "", err
	}
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"), nil
}

func certTemplate(cn string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"ratchet tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
}

// issue makes a P-256 key and a certificate from tmpl signed by parent
// (self-signed when parent is nil), and writes <name>.pem and
// <name>-key.pem into dir.
func issue(dir, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	files := map[string]*pem.Block{
		name + ".pem":     {Type: "CERTIFICATE", Bytes: der},
		name + "-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	}
	for file, block := range files {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, nil, err
		}
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}
