package examples

import (
	"maps"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// TestAnnotatedPodsDeclareTheSeedPairAndTheRouterChain reads the pods of
// k8s/pods-annotated.yaml as the kubernetes source does (labels, then
// annotations over them, the pod's own name) and checks that they declare
// exactly the links of the seed pair and of the router chain, with the
// addresses of pods-pair.yaml's and pods-router-chain.yaml's topologies,
// every peer being a ratchet pod of the file.
func TestAnnotatedPodsDeclareTheSeedPairAndTheRouterChain(t *testing.T) {
	ms, err := checkManifests(readFile(t, filepath.Join("k8s", "pods-annotated.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]*metadata.Pod{}
	for _, m := range ms {
		pod, ok := m.obj.(*corev1.Pod)
		if !ok {
			continue
		}
		keys := maps.Clone(pod.Labels)
		if keys == nil {
			keys = map[string]string{}
		}
		maps.Copy(keys, pod.Annotations)
		keys[metadata.KeyPodName] = pod.Name
		keys[metadata.KeyNamespace] = pod.Namespace
		p, err := metadata.Parse(keys, "eth0")
		if err != nil {
			t.Errorf("pod %s: %v", pod.Name, err)
			continue
		}
		if p == nil {
			t.Errorf("pod %s is not a ratchet pod", pod.Name)
			continue
		}
		pods[pod.Name] = p
	}
	want := map[string][2]string{ // link ID → the addresses of its ends, sorted by ID order
		"ann-pair.in2--ann-primary.in1":        {"192.168.2.101/24", "192.168.2.100/24"},
		"ann-centosa.in1--ann-quagga-a.in1":    {"192.0.2.1/30", "192.0.2.2/30"},
		"ann-quagga-a.mid1--ann-quagga-b.mid1": {"203.0.113.1/30", "203.0.113.2/30"},
		"ann-centosb.in1--ann-quagga-b.in1":    {"192.0.2.6/30", "192.0.2.5/30"},
	}
	got := map[string][2]string{}
	for name, p := range pods {
		for _, l := range p.Links {
			if pods[l.Peer] == nil {
				t.Errorf("pod %s: link to %s, not a ratchet pod of the file", name, l.Peer)
			}
			id := store.LinkID(name, l.IfName, l.Peer, l.PeerIfName)
			ips := [2]string{l.IP, l.PeerIP}
			if id != name+"."+l.IfName+"--"+l.Peer+"."+l.PeerIfName {
				ips = [2]string{l.PeerIP, l.IP}
			}
			if _, dup := got[id]; dup {
				t.Errorf("link %s declared twice", id)
			}
			got[id] = ips
		}
	}
	if !maps.Equal(got, want) {
		ids := slices.Sorted(maps.Keys(got))
		t.Errorf("declared links %v: %v, want %v", ids, got, want)
	}
}
