package metadata

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
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
	if want := (Query{ContainerID: "c", PodNamespace: "lab", PodName: "a"}); !reflect.DeepEqual(etcd.queries[0], want) {
		t.Fatalf("etcd asked %+v, want %+v", etcd.queries[0], want)
	}
	etcd.queries = nil
	_, _, _ = Lookup(context.Background(), []Source{docker, etcd}, Query{PodNamespace: "k", PodName: "p"}, master)
	if want := (Query{PodNamespace: "k", PodName: "p"}); !reflect.DeepEqual(etcd.queries[0], want) {
		t.Fatalf("etcd asked %+v, want the runtime's %+v", etcd.queries[0], want)
	}
}

// A source that only marks the pod (ratchet=true) lets a later source
// describe its links; with none, the marked pod is returned; the first
// describing source wins over later ones.
func TestLookupMarkedPodTakesItsLinksFromALaterSource(t *testing.T) {
	mark := map[string]string{KeyRatchet: "true", KeyPodName: "a"}
	desc := map[string]string{KeyRatchet: "true", KeyPodName: "a", KeyLinks: `[{"peer":"b","ifname":"e1","peer_ifname":"e2"}]`}
	other := map[string]string{KeyRatchet: "true", KeyPodName: "a", KeyLinks: `[{"peer":"c","ifname":"e1","peer_ifname":"e2"}]`}
	kube := &fakeSource{name: "kubernetes", labels: mark}
	etcd := &fakeSource{name: "etcd", labels: desc}
	pod, src, err := Lookup(context.Background(), []Source{kube, etcd}, Query{PodName: "a"}, master)
	if err != nil || src != "etcd" || len(pod.Links) != 1 || pod.Links[0].Peer != "b" {
		t.Fatalf("marked then described: %+v from %q, %v; want b's link from etcd", pod, src, err)
	}
	etcd = &fakeSource{name: "etcd", err: ErrNoMetadata}
	pod, src, err = Lookup(context.Background(), []Source{kube, etcd}, Query{PodName: "a"}, master)
	if err != nil || src != "kubernetes" || pod == nil || pod.Describes() {
		t.Fatalf("marked only: %+v from %q, %v; want a ratchet pod without links from kubernetes", pod, src, err)
	}
	etcd = &fakeSource{name: "etcd", err: ErrSourceUnavailable}
	if pod, _, err = Lookup(context.Background(), []Source{kube, etcd}, Query{PodName: "a"}, master); err != nil || pod == nil {
		t.Fatalf("marked, later source unavailable: %+v, %v; want the marked pod", pod, err)
	}
	kube = &fakeSource{name: "kubernetes", labels: other}
	etcd = &fakeSource{name: "etcd", labels: desc}
	if pod, src, _ = Lookup(context.Background(), []Source{kube, etcd}, Query{PodName: "a"}, master); src != "kubernetes" || pod.Links[0].Peer != "c" {
		t.Fatalf("two describing sources: %+v from %q, want the first's", pod, src)
	}
}
