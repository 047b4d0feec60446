// Package testenv is the shared test environment of ratchet's privileged
// tests: named network namespaces, commands run inside them, the reference
// CNI plugins and ratchet's own binaries built once per test process, an
// embedded etcd and a private dockerd. Every resource it makes is removed by
// t.Cleanup, also when the test fails.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// NetnsRunDir is where named network namespaces are bind-mounted, as
// `ip netns` does.
const NetnsRunDir = "/run/netns"

// RequireRoot skips t when not running as root outside CI, and fails it when
// CI is set: the privileged suites must not silently skip in CI.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("privileged test cannot run: not root (euid %d) while CI=%q", os.Geteuid(), os.Getenv("CI"))
	}
	t.Skip("needs root (network namespaces); run as root or set CI to make this a failure")
}

// UniqueName returns prefix followed by a random hex suffix, short enough for
// an interface or netns name when prefix is at most 7 characters.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("testenv: random: %v", err))
	}
	return prefix + hex.EncodeToString(b)
}

// NS is a named network namespace made for one test.
type NS struct {
	ns.NetNS
	// Name is the namespace's name under NetnsRunDir (usable with `ip netns exec`).
	Name string
}

// NewNS creates a named network namespace with loopback up, and removes it
// when the test ends.
func NewNS(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	name := UniqueName("rt-")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("set lo up in %s: %v: %s", name, err, out)
	}
	n, err := ns.GetNS(filepath.Join(NetnsRunDir, name))
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return &NS{NetNS: n, Name: name}
}

// Exec runs a command inside the namespace and returns its combined output.
func (n *NS) Exec(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s: %w: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustExec runs a command inside the namespace and fails the test on error.
func (n *NS) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Ping sends a few pings from the namespace to addr (IPv4 or IPv6) with a
// short deadline and returns an error when none is answered.
func (n *NS) Ping(addr string) error {
	_, err := n.Exec("ping", "-c", "2", "-i", "0.2", "-W", "1", "-w", "3", addr)
	return err
}

// Links returns the names of the links in the namespace, lo excluded.
func (n *NS) Links(t testing.TB) []string {
	t.Helper()
	out := n.MustExec(t, "ip", "-o", "link", "show")
	return parseLinkNames(out)
}

// HostLinks returns the names of the links in the test process's own netns.
func HostLinks(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	return parseLinkNames(string(out))
}

func parseLinkNames(out string) []string {
	var names []string
	for _, l := range ParseIPLinks(out) {
		names = append(names, l.Name)
	}
	return names
}

// IPLink is one line of `ip -o link show`: the link's name, what followed
// its "@" ("if12" for a peer in another netns, a name in the same one,
// "NONE"), and the words after it ("<...>", "mtu", "1500", "master", ...).
type IPLink struct {
	Name  string
	Peer  string
	Words []string
}

// ParseIPLinks reads the output of `ip -o link show`, lo excluded.
func ParseIPLinks(out string) []IPLink {
	var links []IPLink
	for _, line := range strings.Split(out, "\n") {
		fields := strings.SplitN(line, ": ", 3)
		// A link's line starts with its index; skip anything else, such as
		// "Warning: Peer netns reference is invalid." on stderr.
		if len(fields) < 2 || !isIndex(fields[0]) {
			continue
		}
		name, peer, _ := strings.Cut(fields[1], "@")
		if name == "lo" {
			continue
		}
		l := IPLink{Name: name, Peer: peer}
		if len(fields) == 3 {
			l.Words = strings.Fields(fields[2])
		}
		links = append(links, l)
	}
	return links
}

func isIndex(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
