package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ratchet-cni/ratchet/internal/k8senv"
)

// The overlay: what must differ from examples/k8s on this test bed, and
// nothing else (examples/README.md, "The real-cluster suite", lists it).
//
//   - There is no kube-proxy and no cluster DNS: etcd's ClusterIP and the
//     *.svc names are replaced by the nodes' addresses (etcd runs with
//     hostNetwork on port 12379), in the netconf and the announcer Jobs.
//   - etcd: one member (its peers would find each other by cluster-DNS
//     names), addressed by its pod IP; the image is etcd EtcdVersion built
//     from the module proxy; its volume claim is bound to a hostPath
//     PersistentVolume under the cluster's temporary directory.
//   - ratchetd's in-cluster credentials name the API server by its address
//     (KUBERNETES_SERVICE_HOST/PORT), not by the kubernetes Service.
//   - flanneld runs with --ip-masq=false, so the flannel delegate is told
//     "ipMasq": false (else flannel's bridge masquerades pod traffic).
//   - No FRR image: the routers of the router chain are busybox with the
//     static routes OSPF would have learned, and forwarding on.
//   - The sidecar Pods of announcer-job.yaml are applied only where the
//     overlay asks for them (sidecars: the Kubernetes-native test), with
//     ETCD_ENDPOINTS as the Jobs'.
//
// Images keep the manifests' names (busybox:1.36, registry.k8s.io/pause:3.10,
// ratchet/ratchet:latest, ratchet/announcer:latest are built locally and
// imported into every node); hostPaths keep theirs (a node's /opt/cni/bin
// and /etc/cni/net.d are its own directories).

// overlay applies the test bed's differences to the examples' manifests.
type overlay struct {
	etcdEndpoints string // comma-separated
	pvDir         string
	// sidecars: apply the sidecar Pods of announcer-job.yaml.
	sidecars bool
}

func newOverlay(c *k8senv.Cluster) *overlay {
	var eps []string
	for _, a := range c.NodeAddresses() {
		eps = append(eps, "http://"+a+":12379")
	}
	return &overlay{etcdEndpoints: strings.Join(eps, ","), pvDir: filepath.Join(c.Dir, "etcd-pv")}
}

// manifest reads examples/k8s/<name>, applies the overlay and returns the
// documents as one YAML stream for `kubectl apply -f -`.
func (o *overlay) manifest(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "k8s", name))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, doc := range strings.Split(string(raw), "\n---") {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(j, &obj); err != nil || obj == nil {
			continue
		}
		objs, err := o.apply(obj)
		if err != nil {
			t.Fatalf("%s: overlay: %v", name, err)
		}
		for _, ob := range objs {
			b, _ := json.Marshal(ob)
			out.WriteString("---\n")
			out.Write(b)
			out.WriteString("\n")
		}
	}
	return out.Bytes()
}

// apply returns what replaces obj (nothing, obj changed, or obj plus more).
func (o *overlay) apply(obj map[string]any) ([]map[string]any, error) {
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	switch {
	case kind == "Pod" && strings.HasPrefix(name, "sidecar-"):
		if !o.sidecars {
			return nil, nil
		}
		setEnv(podSpec(obj), "ETCD_ENDPOINTS", o.etcdEndpoints)
	case kind == "StatefulSet" && name == "ratchet-etcd":
		return []map[string]any{o.etcd(obj), o.etcdVolume()}, nil
	case kind == "ConfigMap" && name == "ratchet-netconf":
		return []map[string]any{obj}, o.netconf(obj)
	case kind == "Job":
		setEnv(podSpec(obj), "ETCD_ENDPOINTS", o.etcdEndpoints)
	case kind == "DaemonSet" && name == "ratchetd":
		// No kube-proxy: the kubernetes Service's ClusterIP that the
		// in-cluster credentials name is not reachable; the API server's
		// own address is.
		addEnv(podSpec(obj), "KUBERNETES_SERVICE_HOST", k8senv.ControlPlaneIP)
		addEnv(podSpec(obj), "KUBERNETES_SERVICE_PORT", "6443")
	case kind == "Pod" && routes[strings.TrimPrefix(name, "ann-")] != "":
		o.router(obj, strings.TrimPrefix(name, "ann-"))
	}
	return []map[string]any{obj}, nil
}

// etcd: one member addressed by IP, the locally built image.
func (o *overlay) etcd(obj map[string]any) map[string]any {
	obj["spec"].(map[string]any)["replicas"] = 1
	ctr := podSpec(obj)["containers"].([]any)[0].(map[string]any)
	ctr["image"] = k8senv.EtcdImage
	var args []any
	for _, a := range ctr["args"].([]any) {
		s := a.(string)
		switch {
		case strings.HasPrefix(s, "--initial-advertise-peer-urls="):
			s = "--initial-advertise-peer-urls=http://$(POD_IP):12380"
		case strings.HasPrefix(s, "--initial-cluster="):
			s = "--initial-cluster=ratchet-etcd-0=http://$(POD_IP):12380"
		}
		args = append(args, s)
	}
	ctr["args"] = args
	return obj
}

// etcdVolume is the PersistentVolume the member's claim binds to.
func (o *overlay) etcdVolume() map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "PersistentVolume",
		"metadata": map[string]any{"name": "ratchet-etcd-data-0"},
		"spec": map[string]any{
			"capacity":                      map[string]any{"storage": "1Gi"},
			"accessModes":                   []any{"ReadWriteOnce"},
			"persistentVolumeReclaimPolicy": "Retain",
			"storageClassName":              "",
			"hostPath":                      map[string]any{"path": o.pvDir, "type": "DirectoryOrCreate"},
		},
	}
}

// netconf: etcd at the nodes' addresses; no masquerading by flannel.
func (o *overlay) netconf(obj map[string]any) error {
	data := obj["data"].(map[string]any)
	var conf map[string]any
	if err := json.Unmarshal([]byte(data["10-ratchet.conf"].(string)), &conf); err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	conf["etcd"].(map[string]any)["endpoints"] = strings.Split(o.etcdEndpoints, ",")
	// The master is a chain: flannel first, then portmap.
	master := conf["delegates"].([]any)[0].(map[string]any)
	flannel := master["plugins"].([]any)[0].(map[string]any)
	flannel["delegate"].(map[string]any)["ipMasq"] = false
	b, _ := json.MarshalIndent(conf, "", "  ")
	data["10-ratchet.conf"] = string(b) + "\n"
	return nil
}

// routes are the static routes of the routers (what OSPF would learn), by
// name in pods-router-chain.yaml (pods-annotated.yaml's have prefix ann-).
var routes = map[string]string{
	"quagga-a": "ip route replace 192.0.2.4/30 via 203.0.113.2 dev mid1",
	"quagga-b": "ip route replace 192.0.2.0/30 via 203.0.113.1 dev mid1",
}

// router: busybox with forwarding and static routes instead of FRR.
func (o *overlay) router(obj map[string]any, name string) {
	spec := podSpec(obj)
	ctr := spec["containers"].([]any)[0].(map[string]any)
	ctr["image"] = k8senv.BusyboxImage
	ctr["command"] = []any{"sh", "-c", "until ip -4 addr show dev in1 2>/dev/null | grep -q inet && " +
		"ip -4 addr show dev mid1 2>/dev/null | grep -q inet; do sleep 1; done\n" +
		"sysctl -w net.ipv4.ip_forward=1\n" + routes[name] + "\nwhile true; do sleep 3600; done\n"}
	delete(ctr, "volumeMounts")
	delete(spec, "volumes")
}

// podSpec returns the pod spec of a Pod, or of a workload's template.
func podSpec(obj map[string]any) map[string]any {
	spec := obj["spec"].(map[string]any)
	if tmpl, ok := spec["template"].(map[string]any); ok {
		return tmpl["spec"].(map[string]any)
	}
	return spec
}

// setEnv sets an environment variable of every container that has it.
func setEnv(spec map[string]any, name, value string) {
	for _, c := range spec["containers"].([]any) {
		env, _ := c.(map[string]any)["env"].([]any)
		for _, e := range env {
			if em := e.(map[string]any); em["name"] == name {
				em["value"] = value
			}
		}
	}
}

// addEnv adds (or replaces) variable name in every container of spec.
func addEnv(spec map[string]any, name, value string) {
	for _, c := range spec["containers"].([]any) {
		cm := c.(map[string]any)
		env, _ := cm["env"].([]any)
		env = slices.DeleteFunc(env, func(e any) bool { return e.(map[string]any)["name"] == name })
		cm["env"] = append(env, map[string]any{"name": name, "value": value})
	}
}
