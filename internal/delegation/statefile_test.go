package delegation_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A link planted at an attachment's cache path is replaced, never followed:
// the netconf (etcd password included) does not land in its target.
func TestAddNeverWritesTheCacheThroughAPlantedLink(t *testing.T) {
	ex := newFakeExec()
	r := newRunner(t, ex)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.CacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, cachePath(r, "c1", "eth0")); err != nil {
		t.Fatal(err)
	}
	ds := delegates(t, "1.0.0", threeDelegates, "eth0")
	if _, err := r.Add(context.Background(), attachment("c1"), "1.0.0", ds); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "untouched" {
		t.Errorf("the link's target now holds %.200q", data)
	}
	if fi, err := os.Lstat(cachePath(r, "c1", "eth0")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("cache is %v (%v), want a regular file", fi.Mode(), err)
	}
}
