package dockermeta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// scriptsDir holds the user-facing label files.
var scriptsDir = filepath.Join("..", "..", "scripts")

// primaryLabels are the seed's primary.label as labels.
var primaryLabels = map[string]string{
	"ratchet": "true", "ratchet.pod_name": "primary-pod", "ratchet.primary": "true",
	"ratchet.local_ifname": "in1", "ratchet.local_ip": "192.168.2.100",
	"ratchet.pair_name": "pair-pod", "ratchet.pair_ifname": "in2", "ratchet.pair_ip": "192.168.2.101",
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	out[k] = v
	return out
}

func TestDockerRunsLabelledContainer(t *testing.T) {
	d := testenv.StartDocker(t)
	id, pid := d.RunContainer(t, filepath.Join(scriptsDir, "primary.label"))
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net")); err != nil {
		t.Fatalf("container netns: %v", err)
	}
	src := newSource(t, d.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	pod, name, err := metadata.Lookup(ctx, []metadata.Source{src}, metadata.Query{ContainerID: id}, "eth0")
	if err != nil || name != "docker" {
		t.Fatalf("metadata.Lookup = %q, %v", name, err)
	}
	labels, err := metadata.ReadLabelFile(filepath.Join(scriptsDir, "primary.label"))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := metadata.Parse(labels, "eth0"); !reflect.DeepEqual(pod, want) {
		t.Fatalf("pod from docker labels = %+v\nwant %+v", pod, want)
	}
	want := metadata.Link{Peer: "pair-pod", IfName: "in1", IP: "192.168.2.100/24", PeerIfName: "in2", PeerIP: "192.168.2.101/24"}
	if pod.Links[0] != want {
		t.Fatalf("link = %+v, want %+v", pod.Links[0], want)
	}
	if _, err := src.Labels(ctx, metadata.Query{ContainerID: id[:12]}); err != nil {
		t.Fatalf("short ID: %v", err)
	}

	unknown := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if _, err := src.Labels(ctx, metadata.Query{ContainerID: unknown}); !errors.Is(err, metadata.ErrNoMetadata) {
		t.Fatalf("unknown container: %v, want ErrNoMetadata", err)
	}

}

// fakeDockerd serves the two endpoints DockerSource uses, as API 1.41.
func fakeDockerd(t *testing.T, containers map[string]map[string]string, delay time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			_, _ = w.Write([]byte("OK"))
			return
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		id := strings.TrimSuffix(r.URL.Path[strings.Index(r.URL.Path, "/containers/")+len("/containers/"):], "/json")
		labels, ok := containers[id]
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = fmt.Fprintf(w, `{"message":"No such container: %s"}`, id)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"Id": id, "Config": map[string]any{"Labels": labels}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newSource(t *testing.T, host string) *Source {
	t.Helper()
	s, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestDockerSourceAgainstFakeDaemon(t *testing.T) {
	srv := fakeDockerd(t, map[string]map[string]string{
		"abc":   withLabel(primaryLabels, "io.kubernetes.pod.name", "x"),
		"plain": {"app": "web"},
	}, 0)
	s := newSource(t, "tcp://"+strings.TrimPrefix(srv.URL, "http://"))
	got, err := s.Labels(context.Background(), metadata.Query{ContainerID: "abc"})
	if err != nil || len(got) != len(primaryLabels) || got["io.kubernetes.pod.name"] != "" {
		t.Fatalf("Labels = %v, %v; want only the ratchet labels", got, err)
	}
	for _, id := range []string{"missing", "plain", "", "../images", "a/b"} {
		if _, err := s.Labels(context.Background(), metadata.Query{ContainerID: id}); !errors.Is(err, metadata.ErrNoMetadata) {
			t.Errorf("container %q: %v, want ErrNoMetadata", id, err)
		}
	}
}

func TestDockerSourceDeadlineIsUnavailable(t *testing.T) {
	srv := fakeDockerd(t, map[string]map[string]string{"abc": primaryLabels}, 2*time.Second)
	s := newSource(t, "tcp://"+strings.TrimPrefix(srv.URL, "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Labels(ctx, metadata.Query{ContainerID: "abc"}); !errors.Is(err, metadata.ErrSourceUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow daemon: %v, want metadata.ErrSourceUnavailable and DeadlineExceeded", err)
	}
}

// TestNoDockerSocketIsNoMetadata: a host without Docker has no Docker pods;
// the docker source is passed over, not an error.
func TestNoDockerSocketIsNoMetadata(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docker.sock")
	s := newSource(t, "unix://"+path)
	_, err := s.Labels(context.Background(), metadata.Query{ContainerID: "abc"})
	if !errors.Is(err, metadata.ErrNoMetadata) || errors.Is(err, metadata.ErrSourceUnavailable) {
		t.Fatalf("no socket: %v, want ErrNoMetadata", err)
	}
}

// TestDeadDockerSocketIsUnavailable: a socket that is there but does not
// answer may hide a ratchet pod: unavailable (code 11 for the pod).
func TestDeadDockerSocketIsUnavailable(t *testing.T) {
	host := testenv.DeadDockerHost(t)
	s := newSource(t, host)
	_, err := s.Labels(context.Background(), metadata.Query{ContainerID: "abc"})
	if !errors.Is(err, metadata.ErrSourceUnavailable) || !strings.HasPrefix(err.Error(), "docker at "+host+" unreachable: ") {
		t.Fatalf("dead socket: %v, want ErrSourceUnavailable saying docker at %s unreachable", err, host)
	}
	if s.Name() != "docker" || s.Host() != host {
		t.Fatalf("Name, Host = %q, %q", s.Name(), s.Host())
	}
}

func TestNewRejectsBadHost(t *testing.T) {
	if _, err := New("nonsense"); err == nil {
		t.Fatal("no error for host \"nonsense\"")
	}
}
