package pairing

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/config"
)

// Links planted in cniDir/pairing/ at a pod's state file and at the temp
// path the state used to be written through are never followed: their
// target is untouched, and a state file that is a link is not read.
func TestPairingStateIsNeverWrittenOrReadThroughAPlantedLink(t *testing.T) {
	conf, err := config.Load([]byte(`{"cniVersion":"1.0.0","name":"n","type":"ratchet","delegates":[{"type":"bridge"}],"metadata":[],"cniDir":"` + t.TempDir() + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	m := New(conf, nil, Deps{})
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := m.localPath("c1")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".tmp"} {
		if err := os.Symlink(victim, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := m.readLocal("c1"); ok {
		t.Error("readLocal read the state through a link")
	}
	if err := m.writeLocal(localState{ContainerID: "c1", Namespace: "default", Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "untouched" {
		t.Errorf("the link's target now holds %q", data)
	}
	if st, ok := m.readLocal("c1"); !ok || st.Name != "a" {
		t.Errorf("readLocal = %+v, %v", st, ok)
	}
}
