package wiring

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// pairEndpoints returns the two ends of pair i between na and nb, each
// pair in its own 10.20.i.0/24 and 2001:db8:20:i::/64.
func pairEndpoints(na, nb string, prefix string, i int) (Endpoint, Endpoint) {
	name := fmt.Sprintf("%s%d", prefix, i)
	a := Endpoint{Netns: na, Name: name, MTU: 1400 + i,
		Addresses: []string{fmt.Sprintf("10.20.%d.1/24", i), fmt.Sprintf("2001:db8:20:%x::1/64", i)}}
	b := Endpoint{Netns: nb, Name: name, MTU: 1400 + i,
		Addresses: []string{fmt.Sprintf("10.20.%d.2/24", i), fmt.Sprintf("2001:db8:20:%x::2/64", i)}}
	return a, b
}

// wireAll wires pairs [from, from+n) concurrently and returns the errors.
func wireAll(t testing.TB, na, nb, prefix string, from, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a, b := pairEndpoints(na, nb, prefix, from+i)
			errs[i] = VethPair(testCtx(t), a, b)
		})
	}
	wg.Wait()
	return errs
}

// requireAllWired checks pairs [0, n) are wired as pairEndpoints says, then
// removes them concurrently (even pairs from a's side, odd from b's).
func requireAllWiredThenRemove(t *testing.T, na, nb *testenv.NS, prefix string, n int) {
	t.Helper()
	var names []string
	for i := range n {
		a, b := pairEndpoints(na.Path(), nb.Path(), prefix, i)
		requireInfo(t, mustLookup(t, na, a.Name), "veth", a.MTU, a)
		requireInfo(t, mustLookup(t, nb, b.Name), "veth", b.MTU, b)
		names = append(names, a.Name)
	}
	requireLinks(t, na, names...)
	requireLinks(t, nb, names...)
	requirePing(t, na, "10.20.0.2", "2001:db8:20:0::2", fmt.Sprintf("10.20.%d.2", n-1))

	var wg sync.WaitGroup
	for i, name := range names {
		side := []*testenv.NS{na, nb}[i%2]
		wg.Go(func() {
			if err := Remove(testCtx(t), side.Path(), name); err != nil {
				t.Errorf("remove %s: %v", name, err)
			}
		})
	}
	wg.Wait()
	requireLinks(t, na)
	requireLinks(t, nb)
	requireNoTempLinks(t, na, nb)
}

func TestFiftyVethPairsWiredConcurrently(t *testing.T) {
	na, nb := testenv.NewNS(t), testenv.NewNS(t)
	for i, err := range wireAll(t, na.Path(), nb.Path(), "p", 0, 50) {
		if err != nil {
			t.Errorf("pair %d: %v", i, err)
		}
	}
	requireAllWiredThenRemove(t, na, nb, "p", 50)
}

// Environment of the helper processes of TestProcessesWireSameNetnsConcurrently.
const (
	helperEnvA     = "RATCHET_WIRING_HELPER_NETNS_A"
	helperEnvB     = "RATCHET_WIRING_HELPER_NETNS_B"
	helperEnvFirst = "RATCHET_WIRING_HELPER_FIRST"
	helperPairs    = 10
)

// TestHelperProcessWiresPairs is not a test: it is the body of the helper
// processes started by TestProcessesWireSameNetnsConcurrently.
func TestHelperProcessWiresPairs(t *testing.T) {
	na, nb := os.Getenv(helperEnvA), os.Getenv(helperEnvB)
	if na == "" || nb == "" {
		return // not a helper process: nothing to do (as os/exec's TestHelperProcess)
	}
	first, err := strconv.Atoi(os.Getenv(helperEnvFirst))
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range wireAll(t, na, nb, "m", first, helperPairs) {
		if err != nil {
			t.Errorf("pair %d: %v", first+i, err)
		}
	}
}

func TestProcessesWireSameNetnsConcurrently(t *testing.T) {
	const procs = 4
	na, nb := testenv.NewNS(t), testenv.NewNS(t)
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessWiresPairs$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnvA+"="+na.Path(), helperEnvB+"="+nb.Path(),
				helperEnvFirst+"="+strconv.Itoa(p*helperPairs))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("helper process %d: %v: %s", p, err, out)
			}
		})
	}
	wg.Wait()
	requireAllWiredThenRemove(t, na, nb, "m", procs*helperPairs)
}
