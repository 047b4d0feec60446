package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/logging"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// Every line of the log of a real ADD, CHECK and DEL of a ratchet pair
// (delegates, pairing, completer) carries each key once: `jq .op` reads
// the command's op.
func TestLogLinesCarryEachKeyOnce(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	mp, mq := testcluster.SeedPair(t)
	c.Announce(mp)
	c.Announce(mq)
	a, b := c.Hosts[0].NewPod("primary-pod"), c.Hosts[0].NewPod("pair-pod")
	a.MustAdd()
	b.MustAdd()
	assertSeedPairWired(t, a, b)
	b.MustDel()
	a.MustDel()
	c.AssertNothingLeft()
	data, err := os.ReadFile(filepath.Join(c.Hosts[0].Dir, "ratchet.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		n++
		dups, err := logging.DuplicateKeys(sc.Bytes())
		if err != nil || len(dups) > 0 {
			t.Errorf("duplicate keys %v (%v) in log line %s", dups, err, sc.Bytes())
		}
	}
	if n < 6 {
		t.Errorf("only %d log lines:\n%s", n, data)
	}
}
