package statefile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// plantLinks puts symbolic links at dir/name and at the old fixed temp
// path (dir/name.tmp), both to a file outside dir, and returns that file.
func plantLinks(t *testing.T, dir, name string) string {
	t.Helper()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, name+".tmp")} {
		if err := os.Symlink(victim, p); err != nil {
			t.Fatal(err)
		}
	}
	return victim
}

func wantUntouched(t *testing.T, victim string) {
	t.Helper()
	if data, err := os.ReadFile(victim); err != nil || string(data) != "untouched" {
		t.Errorf("the link's target holds %q (%v), want it untouched", data, err)
	}
}

func TestWriteNeverFollowsAPlantedLink(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	victim := plantLinks(t, dir, "c1.json")
	if err := WriteFile(dir, "c1.json", []byte(`{"password":"secret"}`)); err != nil {
		t.Fatal(err)
	}
	wantUntouched(t, victim)
	fi, err := os.Lstat(filepath.Join(dir, "c1.json"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("target is %v (%v), want a regular 0600 file", fi.Mode(), err)
	}
	data, err := ReadFile(filepath.Join(dir, "c1.json"))
	if err != nil || string(data) != `{"password":"secret"}` {
		t.Errorf("ReadFile = %q, %v", data, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 { // c1.json and the planted c1.json.tmp
		t.Errorf("dir holds %d entries, want the file and the planted link only", len(entries))
	}
}

func TestReadRefusesALink(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	plantLinks(t, dir, "c1.json")
	if data, err := ReadFile(filepath.Join(dir, "c1.json")); err == nil {
		t.Errorf("ReadFile through a link = %q, want an error", data)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "nodir", "x.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: %v, want os.ErrNotExist", err)
	}
}

func TestUnsafeDirectoriesAreRefused(t *testing.T) {
	base := t.TempDir()
	elsewhere := filepath.Join(base, "elsewhere")
	if err := os.Mkdir(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(base, "linked")
	if err := os.Symlink(elsewhere, linked); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil || os.Chmod(open, 0o777) != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{linked, open} {
		if err := WriteFile(dir, "c1.json", []byte("x")); !errors.Is(err, ErrUnsafeDir) {
			t.Errorf("WriteFile in %s: %v, want ErrUnsafeDir", dir, err)
		}
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("wrote through a linked dir: %v", entries)
	}
	if err := WriteFile(base, "../x", nil); err == nil {
		t.Error("WriteFile with a path as name succeeded")
	}
}
