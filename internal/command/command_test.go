package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/config"
)

// fakeExec implements invoke.Exec: it records "CMD type ifname" of every
// call and answers ADD with an address per delegate type.
type fakeExec struct {
	version.PluginDecoder
	mu    sync.Mutex
	calls []string
}

var delegateIPs = map[string]string{"bridge": "10.0.0.2/24", "ptp": "10.0.1.2/24"}

func (f *fakeExec) ExecPlugin(_ context.Context, path string, _ []byte, environ []string) ([]byte, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	typ := filepath.Base(path)
	f.mu.Lock()
	f.calls = append(f.calls, env["CNI_COMMAND"]+" "+typ+" "+env["CNI_IFNAME"])
	f.mu.Unlock()
	if env["CNI_COMMAND"] != "ADD" {
		return nil, nil
	}
	return fmt.Appendf(nil, `{"cniVersion":"1.0.0","ips":[{"address":%q}]}`, delegateIPs[typ]), nil
}

func (f *fakeExec) FindInPath(plugin string, paths []string) (string, error) {
	return filepath.Join(paths[0], plugin), nil
}

func (f *fakeExec) taken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := strings.Join(f.calls, ", ")
	f.calls = nil
	return s
}

// fakePairer records the pairing steps and fails those it is told to.
type fakePairer struct {
	mu                     sync.Mutex
	calls                  []string
	reqs                   []*agentapi.Request
	addErr, delErr, chkErr error
	closed                 bool
}

func (p *fakePairer) record(op string, req *agentapi.Request, err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, op)
	p.reqs = append(p.reqs, req)
	return err
}

func (p *fakePairer) IsRatchet(context.Context, *agentapi.Request) (bool, error) { return true, nil }

func (p *fakePairer) Add(_ context.Context, r *agentapi.Request) error {
	return p.record("Add", r, p.addErr)
}
func (p *fakePairer) Del(_ context.Context, r *agentapi.Request) error {
	return p.record("Del", r, p.delErr)
}
func (p *fakePairer) Check(_ context.Context, r *agentapi.Request) error {
	return p.record("Check", r, p.chkErr)
}
func (p *fakePairer) Status(context.Context) error {
	return p.record("Status", nil, nil)
}
func (p *fakePairer) GC(context.Context, []types.GCAttachment) error {
	return p.record("GC", nil, nil)
}
func (p *fakePairer) Close() error { p.closed = true; return nil }

var _ Pairer = (*fakePairer)(nil)

// fixture is a Plugin with a fake Exec and pairer, a temp cniDir and log.
type fixture struct {
	plugin *Plugin
	exec   *fakeExec
	pairer *fakePairer
	dir    string
	stdout string
}

func newFixture(t *testing.T, pairer *fakePairer) *fixture {
	f := &fixture{exec: &fakeExec{}, pairer: pairer, dir: t.TempDir()}
	f.plugin = &Plugin{Exec: f.exec, Getenv: func(k string) string {
		if k == "CNI_PATH" {
			return "/fake/bin"
		}
		return ""
	}}
	f.plugin.NewPairer = func(*config.NetConf, []byte, *slog.Logger) (Pairer, error) {
		if f.pairer == nil {
			return nil, nil
		}
		return f.pairer, nil
	}
	// types.PrintResult writes to os.Stdout: keep it in a file.
	f.stdout = filepath.Join(f.dir, "stdout")
	out, err := os.Create(f.stdout)
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = out
	t.Cleanup(func() { os.Stdout = saved; out.Close() })
	return f
}

func (f *fixture) args(prevResult string) *skel.CmdArgs {
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"net","cniDir":%q,"logFile":%q,"logLevel":"debug",
		"delegates":[{"type":"bridge"},{"type":"ptp"}]%s}`,
		filepath.Join(f.dir, "cni"), filepath.Join(f.dir, "log"), prevResult)
	return &skel.CmdArgs{ContainerID: "c1", Netns: "/var/run/netns/c1", IfName: "eth0",
		Args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=a", Path: "/fake/bin", StdinData: []byte(conf)}
}

func (f *fixture) file(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func cniCode(t *testing.T, err error) uint {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *types.Error", err, err)
	}
	return te.Code
}

func TestAddHandsPairerTheMasterResultAndPrintsIt(t *testing.T) {
	f := newFixture(t, &fakePairer{})
	if err := f.plugin.Funcs().Add(f.args("")); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if got, want := f.exec.taken(), "ADD bridge eth0, ADD ptp net1"; got != want {
		t.Errorf("delegate calls = %s, want %s", got, want)
	}
	if len(f.pairer.reqs) != 1 || f.pairer.calls[0] != "Add" {
		t.Fatalf("pairer calls = %v, want [Add]", f.pairer.calls)
	}
	req := f.pairer.reqs[0]
	if req.ContainerID != "c1" || req.NetNS != "/var/run/netns/c1" || req.IfName != "eth0" ||
		!strings.Contains(req.Args, "K8S_POD_NAME=a") || len(req.Netconf) == 0 {
		t.Errorf("pairing request = %+v, want the invocation's", req)
	}
	if !slices.Equal(req.Reserved, []string{"eth0", "net1"}) {
		t.Errorf("reserved names = %v, want the delegates' eth0, net1", req.Reserved)
	}
	var printed types100.Result
	if err := json.Unmarshal([]byte(f.file(t, "stdout")), &printed); err != nil || len(printed.IPs) != 1 ||
		printed.IPs[0].Address.String() != delegateIPs["bridge"] || printed.CNIVersion != "1.0.0" {
		t.Errorf("stdout = %q (err %v), want the master's 1.0.0 result", f.file(t, "stdout"), err)
	}
	if !f.pairer.closed {
		t.Error("pairer not closed")
	}
}

func TestAddPairerFailureRollsBackDelegatesWithPairersCode(t *testing.T) {
	f := newFixture(t, &fakePairer{addErr: &agentapi.Error{Code: 11, Msg: "record pod: etcd unavailable"}})
	err := f.plugin.Funcs().Add(f.args(""))
	if code := cniCode(t, err); code != types.ErrTryAgainLater || !strings.Contains(err.Error(), "record pod: etcd unavailable") {
		t.Errorf("Add = %v (code %d), want the pairer's code 11", err, code)
	}
	if got, want := f.exec.taken(), "ADD bridge eth0, ADD ptp net1, DEL ptp net1, DEL bridge eth0"; got != want {
		t.Errorf("delegate calls = %s, want %s", got, want)
	}
	if out := f.file(t, "stdout"); out != "" {
		t.Errorf("failed ADD printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "cni", "c1-eth0.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delegation cache left after rollback: %v", err)
	}
	if !strings.Contains(f.file(t, "log"), "etcd unavailable") {
		t.Errorf("log does not record the failure:\n%s", f.file(t, "log"))
	}
}

func TestDelPairerFailureIsLoggedAndDelegatesStillDeleted(t *testing.T) {
	f := newFixture(t, &fakePairer{delErr: errors.New("link in1 busy")})
	if err := f.plugin.Funcs().Add(f.args("")); err != nil {
		t.Fatalf("Add: %v", err)
	}
	f.exec.taken()
	if err := f.plugin.Funcs().Del(f.args("")); err != nil {
		t.Fatalf("Del = %v, want success despite the pairer", err)
	}
	if got, want := f.exec.taken(), "DEL ptp net1, DEL bridge eth0"; got != want {
		t.Errorf("delegate calls = %s, want %s", got, want)
	}
	if got := strings.Join(f.pairer.calls, ","); got != "Add,Del" {
		t.Errorf("pairer calls = %s, want Add,Del", got)
	}
	log := f.file(t, "log")
	if !strings.Contains(log, "pairing teardown incomplete") || !strings.Contains(log, "link in1 busy") {
		t.Errorf("log does not record the pairing failure:\n%s", log)
	}
}

func TestNilPairerMeansDelegationOnly(t *testing.T) {
	f := newFixture(t, nil)
	funcs := f.plugin.Funcs()
	if err := funcs.Add(f.args("")); err != nil {
		t.Fatalf("Add: %v", err)
	}
	prev := `,"prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}`
	if err := funcs.Check(f.args(prev)); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := funcs.Del(f.args("")); err != nil {
		t.Fatalf("Del: %v", err)
	}
	want := "ADD bridge eth0, ADD ptp net1, CHECK bridge eth0, CHECK ptp net1, DEL ptp net1, DEL bridge eth0"
	if got := f.exec.taken(); got != want {
		t.Errorf("delegate calls = %s, want %s", got, want)
	}
}

func TestCheckRunsDelegatesThenPairer(t *testing.T) {
	f := newFixture(t, &fakePairer{chkErr: &codedErr{types.ErrInternal, errors.New("in1 missing")}})
	if err := f.plugin.Funcs().Add(f.args("")); err != nil {
		t.Fatalf("Add: %v", err)
	}
	f.exec.taken()
	err := f.plugin.Funcs().Check(f.args(`,"prevResult":{"cniVersion":"1.0.0"}`))
	if code := cniCode(t, err); code != types.ErrInternal || !strings.Contains(err.Error(), "in1 missing") {
		t.Errorf("Check = %v, want the pairer's failure", err)
	}
	if got, want := f.exec.taken(), "CHECK bridge eth0, CHECK ptp net1"; got != want {
		t.Errorf("delegate calls = %s, want %s", got, want)
	}
	if got := strings.Join(f.pairer.calls, ","); got != "Add,Check" {
		t.Errorf("pairer calls = %s, want Add,Check", got)
	}
}

func TestInvalidInputIsConfigErrorAndRunsNothing(t *testing.T) {
	f := newFixture(t, &fakePairer{})
	err := f.plugin.Funcs().Check(f.args(""))
	if code := cniCode(t, err); code != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "prevResult") {
		t.Errorf("Check without prevResult = %v, want code 7 naming prevResult", err)
	}
	bad := f.args("")
	bad.StdinData = []byte(`{"cniVersion":"1.0.0","name":"net","delegates":[]}`)
	err = f.plugin.Funcs().Add(bad)
	if code := cniCode(t, err); code != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "delegates") {
		t.Errorf("Add with no delegates = %v, want code 7 naming delegates", err)
	}
	if calls := f.exec.taken(); calls != "" || len(f.pairer.calls) != 0 {
		t.Errorf("invalid invocations ran %q and pairer %v", calls, f.pairer.calls)
	}
}

func TestPairerFactoryFailureFailsCommandBeforeDelegates(t *testing.T) {
	f := newFixture(t, nil)
	f.plugin.NewPairer = func(*config.NetConf, []byte, *slog.Logger) (Pairer, error) {
		return nil, &codedErr{types.ErrTryAgainLater, errors.New("no etcd")}
	}
	if code := cniCode(t, f.plugin.Funcs().Add(f.args(""))); code != types.ErrTryAgainLater {
		t.Errorf("code = %d, want 11", code)
	}
	if calls := f.exec.taken(); calls != "" {
		t.Errorf("delegates ran: %s", calls)
	}
}
