package logging

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestDuplicateKeysFindsThemAtAnyDepth(t *testing.T) {
	for line, want := range map[string][]string{
		`{"a":1,"b":2}`:                           nil,
		`{"op":"ADD","op":"DEL"}`:                 {"op"},
		`{"x":{"y":1,"y":2},"z":[{"k":1,"k":1}]}`: {"x.y", "z.k"},
	} {
		got, err := DuplicateKeys([]byte(line))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("DuplicateKeys(%s) = %v, %v; want %v", line, got, err, want)
		}
	}
}

// Every key once a line: the outer With's value wins, an equal repeat is
// dropped, a different one is kept under a suffixed key.
func TestEachKeyOncePerLine(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "debug").With("op", "ADD", "container", "c1", "ifname", "eth0")
	log.Debug("phase", "op", "ADD", "phase", "wire")
	log.Info("completer started", "pid", 4242, "container", "c1")
	log.With("op", "COMPLETE").Warn("w", "op", "DEL", "msg", "m", "level", "x", "op", "GC")
	log.WithGroup("g").Info("grouped", "op", "inner")
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		dups, err := DuplicateKeys([]byte(line))
		if err != nil || len(dups) > 0 {
			t.Errorf("line %s: duplicate keys %v (%v)", line, dups, err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m["op"] != "ADD" || m["container"] != "c1" {
			t.Errorf("line %s: op/container are not the logger's own", line)
		}
		if m["msg"] == "completer started" && (m["pid_2"] != float64(4242) || m["pid"] == float64(4242)) {
			t.Errorf("line %s: the child's pid is lost or taken for the logger's", line)
		}
	}
}
