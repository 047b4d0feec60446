package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// Import paths of the binaries tests build. The reference plugins and cnitool
// are `tool` dependencies in go.mod, so their versions are pinned there.
const (
	PkgBridge    = "github.com/containernetworking/plugins/plugins/main/bridge"
	PkgHostLocal = "github.com/containernetworking/plugins/plugins/ipam/host-local"
	PkgLoopback  = "github.com/containernetworking/plugins/plugins/main/loopback"
	PkgPtp       = "github.com/containernetworking/plugins/plugins/main/ptp"
	PkgCnitool   = "github.com/containernetworking/cni/cnitool"
	PkgRatchet   = "github.com/ratchet-cni/ratchet/ratchet"
	PkgRatchetd  = "github.com/ratchet-cni/ratchet/ratchetd"
)

// ReferencePlugins are the CNI plugins the tests delegate to.
var ReferencePlugins = []string{PkgBridge, PkgHostLocal, PkgLoopback, PkgPtp}

// binDir is the per-process directory the binaries are built into; it lives
// for the whole test binary and is removed by Main.
var (
	binMu    sync.Mutex
	binDir   string
	binBuilt = map[string]bool{}
)

// Main wraps testing.M.Run so that the per-process bin dir is removed after
// all tests of the package ran. Use it from TestMain.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	binMu.Lock()
	defer binMu.Unlock()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	return code
}

// BinDir builds the named packages (import paths) once per test process into
// one directory and returns it; that directory is a CNI_PATH for the
// reference plugins and ratchet. The binaries are named after the last
// element of the import path.
func BinDir(t testing.TB, pkgs ...string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if binDir == "" {
		d, err := os.MkdirTemp("", "ratchet-testbin-")
		if err != nil {
			t.Fatalf("bin dir: %v", err)
		}
		binDir = d
	}
	var missing []string
	for _, p := range pkgs {
		if !binBuilt[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		if err := goBuild(binDir, missing); err != nil {
			t.Fatal(err)
		}
		for _, p := range missing {
			binBuilt[p] = true
		}
	}
	return binDir
}

// Bin returns the path of one built binary, building it when needed.
func Bin(t testing.TB, pkg string) string {
	t.Helper()
	return filepath.Join(BinDir(t, pkg), path.Base(pkg))
}

func goBuild(dir string, pkgs []string) error {
	args := append([]string{"build", "-o", dir + "/"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = ModuleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %v: %w: %s", pkgs, err, out)
	}
	return nil
}

// ModuleRoot finds the directory holding go.mod above this process's working
// directory (tests run in their package directory).
func ModuleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// RouterChainFile is the router chain's topology (centosa – quagga-a –
// quagga-b – centosb), relative to the module root: the one file the demo
// and the tests announce.
const RouterChainFile = "examples/router-chain.topology.yaml"

// RepoFile returns the path of a file of the repository given relative to
// the module root (slash-separated).
func RepoFile(rel string) string {
	return filepath.Join(ModuleRoot(), filepath.FromSlash(rel))
}

// RunEnv runs a command with env as its whole environment and returns its
// exit code, stdout and stderr; it fails t only when the command cannot
// run at all.
func RunEnv(t testing.TB, env []string, name string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	var ee *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", name, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}
