package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSource answers Labels with fixed labels or an error and records the
// queries it was asked.
type fakeSource struct {
	name    string
	labels  map[string]string
	err     error
	queries []Query
}

func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) Labels(_ context.Context, q Query) (map[string]string, error) {
	f.queries = append(f.queries, q)
	return f.labels, f.err
}

func TestLookupFirstRatchetPodWins(t *testing.T) {
	none := &fakeSource{name: "none", err: fmt.Errorf("x: %w", ErrNoMetadata)}
	plain := &fakeSource{name: "plain", labels: map[string]string{"app": "web"}}
	pair := &fakeSource{name: "pair", labels: pairLabels()}
	primary := &fakeSource{name: "primary", labels: primaryLabels()}
	pod, src, err := Lookup(context.Background(), []Source{none, plain, primary, pair}, Query{ContainerID: "c"}, master)
	if err != nil || src != "primary" || pod.Name != "primary-pod" {
		t.Fatalf("Lookup = %+v, %q, %v; want primary-pod from primary", pod, src, err)
	}
	if len(pair.queries) != 0 {
		t.Fatal("a source after the winner was asked")
	}
}

func TestLookupNoRatchetPod(t *testing.T) {
	none := &fakeSource{name: "none", err: ErrNoMetadata}
	plain := &fakeSource{name: "plain", labels: map[string]string{"ratchet": "false"}}
	pod, src, err := Lookup(context.Background(), []Source{none, plain}, Query{}, master)
	if pod != nil || src != "" || err != nil {
		t.Fatalf("Lookup = %+v, %q, %v; want nil, \"\", nil", pod, src, err)
	}
	if pod, _, err := Lookup(context.Background(), nil, Query{}, master); pod != nil || err != nil {
		t.Fatalf("Lookup without sources = %+v, %v", pod, err)
	}
}

func TestLookupInvalidMetadataNamesSourceAndKey(t *testing.T) {
	bad := &fakeSource{name: "docker", labels: with(primaryLabels(), KeyLocalIP, "300.1.1.1")}
	later := &fakeSource{name: "etcd", labels: primaryLabels()}
	_, src, err := Lookup(context.Background(), []Source{bad, later}, Query{}, master)
	var e *Error
	if src != "docker" || !errors.As(err, &e) || e.Key != KeyLocalIP || !strings.Contains(err.Error(), "docker") {
		t.Fatalf("Lookup = %q, %v; want an *Error on ratchet.local_ip from docker", src, err)
	}
}

func TestLookupSourceErrorStops(t *testing.T) {
	broken := &fakeSource{name: "etcd", err: errors.New("permission denied")}
	later := &fakeSource{name: "other", labels: primaryLabels()}
	_, src, err := Lookup(context.Background(), []Source{broken, later}, Query{}, master)
	if src != "etcd" || err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Lookup = %q, %v", src, err)
	}
}

func TestLookupSkipsUnavailableSourceButReportsIt(t *testing.T) {
	down := &fakeSource{name: "docker", err: Unavailable("docker at unix:///x", errors.New("refused"))}
	etcd := &fakeSource{name: "etcd", labels: pairLabels()}
	pod, src, err := Lookup(context.Background(), []Source{down, etcd}, Query{}, master)
	if err != nil || src != "etcd" || pod.Name != "pair-pod" {
		t.Fatalf("Lookup = %+v, %q, %v; want pair-pod from etcd", pod, src, err)
	}
	etcd.labels, etcd.err = nil, ErrNoMetadata
	pod, _, err = Lookup(context.Background(), []Source{down, etcd}, Query{}, master)
	if pod != nil || !errors.Is(err, ErrSourceUnavailable) || !strings.Contains(err.Error(), "docker at unix:///x unreachable: refused") {
		t.Fatalf("Lookup = %+v, %v; want ErrSourceUnavailable", pod, err)
	}
}

func TestLookupFillsPodNameFromEarlierLabels(t *testing.T) {
	docker := &fakeSource{name: "docker", labels: map[string]string{KeyPodName: "a", KeyNamespace: "lab"}}
	etcd := &fakeSource{name: "etcd", err: ErrNoMetadata}
	_, _, _ = Lookup(context.Background(), []Source{docker, etcd}, Query{ContainerID: "c"}, master)
	if want := (Query{ContainerID: "c", PodNamespace: "lab", PodName: "a"}); etcd.queries[0] != want {
		t.Fatalf("etcd asked %+v, want %+v", etcd.queries[0], want)
	}
	etcd.queries = nil
	_, _, _ = Lookup(context.Background(), []Source{docker, etcd}, Query{PodNamespace: "k", PodName: "p"}, master)
	if want := (Query{PodNamespace: "k", PodName: "p"}); etcd.queries[0] != want {
		t.Fatalf("etcd asked %+v, want the runtime's %+v", etcd.queries[0], want)
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

func newDockerSource(t *testing.T, host string) *DockerSource {
	t.Helper()
	s, err := NewDockerSource(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestDockerSourceAgainstFakeDaemon(t *testing.T) {
	srv := fakeDockerd(t, map[string]map[string]string{
		"abc":   with(primaryLabels(), "io.kubernetes.pod.name", "x"),
		"plain": {"app": "web"},
	}, 0)
	s := newDockerSource(t, "tcp://"+strings.TrimPrefix(srv.URL, "http://"))
	got, err := s.Labels(context.Background(), Query{ContainerID: "abc"})
	if err != nil || len(got) != len(primaryLabels()) || got["io.kubernetes.pod.name"] != "" {
		t.Fatalf("Labels = %v, %v; want only the ratchet labels", got, err)
	}
	for _, id := range []string{"missing", "plain", "", "../images", "a/b"} {
		if _, err := s.Labels(context.Background(), Query{ContainerID: id}); !errors.Is(err, ErrNoMetadata) {
			t.Errorf("container %q: %v, want ErrNoMetadata", id, err)
		}
	}
}

func TestDockerSourceDeadlineIsUnavailable(t *testing.T) {
	srv := fakeDockerd(t, map[string]map[string]string{"abc": primaryLabels()}, 2*time.Second)
	s := newDockerSource(t, "tcp://"+strings.TrimPrefix(srv.URL, "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Labels(ctx, Query{ContainerID: "abc"}); !errors.Is(err, ErrSourceUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow daemon: %v, want ErrSourceUnavailable and DeadlineExceeded", err)
	}
}

func TestDockerSourceDeadSocketIsUnavailable(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	s := newDockerSource(t, host)
	_, err := s.Labels(context.Background(), Query{ContainerID: "abc"})
	if !errors.Is(err, ErrSourceUnavailable) || !strings.HasPrefix(err.Error(), "docker at "+host+" unreachable: ") {
		t.Fatalf("dead socket: %v, want ErrSourceUnavailable saying docker at %s unreachable", err, host)
	}
	if s.Name() != "docker" || s.Host() != host {
		t.Fatalf("Name, Host = %q, %q", s.Name(), s.Host())
	}
}

func TestNewDockerSourceRejectsBadHost(t *testing.T) {
	if _, err := NewDockerSource("nonsense"); err == nil {
		t.Fatal("no error for host \"nonsense\"")
	}
}
