package metadata

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// TestReadLabelFileMatchesDockerCLI runs a container with a tricky label file
// and compares the labels docker gave it with what ReadLabelFile reads.
func TestReadLabelFileMatchesDockerCLI(t *testing.T) {
	d := testenv.StartDocker(t)
	file := filepath.Join(t.TempDir(), "tricky.label")
	content := "\xEF\xBB\xBF# comment\n\n  ratchet=true\n\t# indented\na=b=c\nspaces= kept  \n" +
		"quoted=\"q\"\nempty=\nnovalue\ndup=1\ndup=2\ncrlf=x\r\nlast=no newline"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	id, _ := d.RunContainer(t, file)
	out, err := d.Run(t, "inspect", "-f", "{{json .Config.Labels}}", id)
	if err != nil {
		t.Fatal(err)
	}
	var fromDocker map[string]string
	if err := json.Unmarshal([]byte(out), &fromDocker); err != nil {
		t.Fatalf("labels %q: %v", out, err)
	}
	ours, err := ReadLabelFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ours, fromDocker) {
		t.Fatalf("ReadLabelFile = %q\ndocker gave    %q", ours, fromDocker)
	}
}
