package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/ratchet-cni/ratchet/internal/etcdembed"
)

// Etcd is an embedded single-node etcd (v2 and v3 APIs) on free loopback
// ports, with its data in a temporary directory.
type Etcd struct {
	// URL is the client URL, e.g. http://127.0.0.1:40123.
	URL string

	t       testing.TB
	dir     string
	peerURL string
	srv     *embed.Etcd
}

// StartEtcd starts an embedded etcd and stops it when the test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	e := &Etcd{t: t, dir: t.TempDir()}
	// A port found free can be taken before etcd binds it: try fresh ports.
	var err error
	for range 5 {
		e.URL, e.peerURL = "http://"+freeAddr(t), "http://"+freeAddr(t)
		if err = e.start(); err == nil {
			t.Cleanup(e.Stop)
			return e
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatal(err)
	return nil
}

func (e *Etcd) start() error {
	srv, err := etcdembed.Start("ratchet-test", e.dir, e.URL, e.peerURL)
	if err != nil {
		return err
	}
	e.srv = srv
	return nil
}

// Stop stops the server (idempotent); its data stays until the test ends.
func (e *Etcd) Stop() {
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
}

// Restart starts the server again on the same ports with the same data.
func (e *Etcd) Restart() {
	e.t.Helper()
	e.Stop()
	if err := e.start(); err != nil {
		e.t.Fatal(err)
	}
}

// freeAddr returns a loopback host:port that was free a moment ago.
//
// The port is drawn below the kernel's ephemeral range (32768 and up), so
// that no outgoing connection of a parallel test takes it between this
// check and the server's bind.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr
	}
	t.Fatal("free port: none found below the ephemeral range in 100 tries")
	return ""
}
