package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestDockerRunsLabelledContainer(t *testing.T) {
	d := testenv.StartDocker(t)
	id, pid := d.RunContainer(t, filepath.Join(scriptsDir, "primary.label"))
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net")); err != nil {
		t.Fatalf("container netns: %v", err)
	}
	src := newDockerSource(t, d.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	pod, name, err := Lookup(ctx, []Source{src}, Query{ContainerID: id}, "eth0")
	if err != nil || name != "docker" {
		t.Fatalf("Lookup = %q, %v", name, err)
	}
	if !reflect.DeepEqual(pod, seedPrimaryPod) {
		t.Fatalf("pod from docker labels = %+v\nwant %+v", pod, seedPrimaryPod)
	}
	want := Link{Peer: "pair-pod", IfName: "in1", IP: "192.168.2.100/24", PeerIfName: "in2", PeerIP: "192.168.2.101/24"}
	if pod.Links[0] != want {
		t.Fatalf("link = %+v, want %+v", pod.Links[0], want)
	}
	if _, err := src.Labels(ctx, Query{ContainerID: id[:12]}); err != nil {
		t.Fatalf("short ID: %v", err)
	}

	unknown := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if _, err := src.Labels(ctx, Query{ContainerID: unknown}); !errors.Is(err, ErrNoMetadata) {
		t.Fatalf("unknown container: %v, want ErrNoMetadata", err)
	}

	dead := newDockerSource(t, "unix://"+filepath.Join(t.TempDir(), "dead.sock"))
	if _, err := dead.Labels(ctx, Query{ContainerID: id}); !errors.Is(err, ErrSourceUnavailable) {
		t.Fatalf("dead socket: %v, want ErrSourceUnavailable", err)
	}
}

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
