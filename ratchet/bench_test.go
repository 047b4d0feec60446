package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// BenchmarkCnitoolRatchetVsBareBridge times ADD and DEL through cnitool for
// a bare bridge + host-local netconf and for ratchet delegating to the same
// master, interleaved in one run, and reports the medians and ratios. Run
// with -benchtime 1x; each run does benchRounds of each.
func BenchmarkCnitoolRatchetVsBareBridge(b *testing.B) {
	const benchRounds = 50
	for range b.N {
		bare, rat := benchConfs(b)
		var addBare, delBare, addRat, delRat []time.Duration
		pod := testenv.NewNS(b)
		host := testenv.NewNS(b)
		for range benchRounds {
			a, d := cnitoolRound(b, host, pod, bare)
			addBare, delBare = append(addBare, a), append(delBare, d)
			a, d = cnitoolRound(b, host, pod, rat)
			addRat, delRat = append(addRat, a), append(delRat, d)
		}
		mb, mr := median(addBare), median(addRat)
		db, dr := median(delBare), median(delRat)
		b.ReportMetric(float64(mb.Microseconds())/1000, "bare-add-ms")
		b.ReportMetric(float64(mr.Microseconds())/1000, "ratchet-add-ms")
		b.ReportMetric(float64(mr)/float64(mb), "add-ratio")
		b.ReportMetric(float64(db.Microseconds())/1000, "bare-del-ms")
		b.ReportMetric(float64(dr.Microseconds())/1000, "ratchet-del-ms")
		b.ReportMetric(float64(dr)/float64(db), "del-ratio")
	}
}

type benchConf struct{ dir, name string }

// benchConfs writes the two netconfs into NETCONFPATH dirs.
func benchConfs(b *testing.B) (bare, rat benchConf) {
	dir := b.TempDir()
	br := testenv.UniqueName("rb")
	master := map[string]any{"type": "bridge", "bridge": br, "isGateway": true,
		"ipam": map[string]any{"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": filepath.Join(dir, "ipam")}}
	bareConf := map[string]any{"cniVersion": "1.0.0", "name": "bare"}
	for k, v := range master {
		bareConf[k] = v
	}
	ratConf := map[string]any{"cniVersion": "1.0.0", "name": "rat", "type": "ratchet",
		"delegates": []any{master}, "metadata": []string{}, "cniDir": filepath.Join(dir, "cache")}
	bare = benchConf{filepath.Join(dir, "bare"), "bare"}
	rat = benchConf{filepath.Join(dir, "rat"), "rat"}
	for c, conf := range map[benchConf]any{bare: bareConf, rat: ratConf} {
		data, _ := json.Marshal(conf)
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.dir, "10-"+c.name+".conf"), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return bare, rat
}

func cnitoolRound(b *testing.B, host, pod *testenv.NS, c benchConf) (add, del time.Duration) {
	bin := testenv.BinDir(b, append(append([]string{}, testenv.ReferencePlugins...), testenv.PkgRatchet, testenv.PkgCnitool)...)
	run := func(op string) time.Duration {
		cmd := exec.Command("ip", "netns", "exec", host.Name, filepath.Join(bin, "cnitool"), op, c.name, pod.Path())
		cmd.Env = append(os.Environ(), "CNI_PATH="+bin, "NETCONFPATH="+c.dir)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("cnitool %s %s: %v: %s", op, c.name, err, out)
		}
		return time.Since(start)
	}
	return run("add"), run("del")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
