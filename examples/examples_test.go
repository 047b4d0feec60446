package examples

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/ratchet-cni/ratchet/internal/config"
)

// wantManifests are the manifests DESIGN.md and README.md promise.
var wantManifests = []string{
	"announcer-job.yaml",
	"etcd.yaml",
	"installer-daemonset.yaml",
	"pods-pair.yaml",
	"pods-router-chain.yaml",
	"ratchetd-daemonset.yaml",
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func manifestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		if filepath.Ext(f) != ".yaml" {
			t.Errorf("%s: manifests end in .yaml", f)
			continue
		}
		names = append(names, filepath.Base(f))
	}
	for _, want := range wantManifests {
		if !slices.Contains(names, want) {
			t.Errorf("k8s/%s is missing", want)
		}
	}
	return names
}

// loadManifests decodes and checks every manifest, failing the test on any
// error, and returns the objects by file name.
func loadManifests(t *testing.T) map[string][]manifest {
	t.Helper()
	out := map[string][]manifest{}
	for _, name := range manifestFiles(t) {
		ms, err := checkManifests(readFile(t, filepath.Join("k8s", name)))
		if err != nil {
			t.Errorf("k8s/%s: %v", name, err)
		}
		if len(ms) == 0 {
			t.Errorf("k8s/%s: no objects", name)
		}
		out[name] = ms
	}
	return out
}

// find returns the object of type T named name in the manifests.
func find[T object](all map[string][]manifest, name string) (T, bool) {
	for _, ms := range all {
		for _, m := range ms {
			if o, ok := m.obj.(T); ok && m.obj.GetName() == name {
				return o, true
			}
		}
	}
	var zero T
	return zero, false
}

func TestNetconfsLoad(t *testing.T) {
	files, err := filepath.Glob("*.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10-ratchet.conf", "10-ratchet-bridge.conf"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is missing", want)
		}
	}
	for _, f := range files {
		if err := checkNetconf(readFile(t, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// wantCapabilities are the capabilities the example netconfs declare, so
// that a runtime passes their runtimeConfig (pod annotations, hostPorts,
// bandwidth) to ratchet, which passes each on to the plugins declaring it.
var wantCapabilities = map[string]bool{"io.kubernetes.cri.pod-annotations": true, "portMappings": true, "bandwidth": true}

func TestClusterNetconfDelegatesToFlannelAndReadsEtcd(t *testing.T) {
	c, err := config.Load(readFile(t, "10-ratchet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	master := c.PrepDelegates("eth0")[c.MasterIndex()]
	if !slices.Equal(master.Plugins, []string{"flannel", "portmap"}) || c.Delegates[c.MasterIndex()]["masterplugin"] != true {
		t.Errorf("master delegate %v, want the chain flannel + portmap with masterplugin", c.Delegates[c.MasterIndex()])
	}
	var chain struct {
		Plugins []struct {
			Type         string          `json:"type"`
			Capabilities map[string]bool `json:"capabilities"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(master.Conf, &chain); err != nil || len(chain.Plugins) != 2 || !chain.Plugins[1].Capabilities["portMappings"] {
		t.Errorf("portmap does not declare portMappings (%v): %s", err, master.Conf)
	}
	if !maps.Equal(c.Capabilities, wantCapabilities) {
		t.Errorf("capabilities %v, want %v", c.Capabilities, wantCapabilities)
	}
	if !slices.Equal(c.Metadata, []string{"kubernetes", "etcd"}) {
		t.Errorf("metadata %v, want [kubernetes etcd] (no Docker labels under containerd)", c.Metadata)
	}
	if c.LogFile != "/var/log/ratchet.log" {
		t.Errorf("logFile %q", c.LogFile)
	}
	b, err := config.Load(readFile(t, "10-ratchet-bridge.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if master := b.Delegates[b.MasterIndex()]; master["type"] != "bridge" {
		t.Errorf("bridge variant's master delegate %v", master)
	}
	if !maps.Equal(b.Capabilities, wantCapabilities) {
		t.Errorf("bridge variant's capabilities %v, want %v", b.Capabilities, wantCapabilities)
	}
	if !slices.Equal(b.Metadata, []string{"docker", "etcd"}) {
		t.Errorf("bridge variant's metadata %v, want [docker etcd]", b.Metadata)
	}
}

// keyPaths lists the object keys of a JSON document, nested ones as a.b,
// leaving out what is inside "delegates" (each plugin has its own fields).
func keyPaths(prefix string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	var out []string
	for k, sub := range m {
		out = append(out, prefix+k)
		if k != "delegates" {
			out = append(out, keyPaths(prefix+k+".", sub)...)
		}
	}
	sort.Strings(out)
	return out
}

func TestClusterNetconfSpellsOutEveryField(t *testing.T) {
	var cluster, bridge any
	if err := json.Unmarshal(readFile(t, "10-ratchet.conf"), &cluster); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readFile(t, "10-ratchet-bridge.conf"), &bridge); err != nil {
		t.Fatal(err)
	}
	if got, want := keyPaths("", cluster), keyPaths("", bridge); !slices.Equal(got, want) {
		t.Errorf("10-ratchet.conf fields\n%v\nwant those of DESIGN.md's netconf\n%v", got, want)
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	all := loadManifests(t)
	for name, ms := range all {
		for _, m := range ms {
			t.Logf("k8s/%s: %s", name, m)
		}
	}
}

func TestManifestsAreTabFreeYAMLDocuments(t *testing.T) {
	for _, name := range manifestFiles(t) {
		data := readFile(t, filepath.Join("k8s", name))
		if bytes.ContainsRune(data, '\t') {
			t.Errorf("k8s/%s has a tab", name)
		}
		docs, err := splitYAML(data)
		if err != nil {
			t.Errorf("k8s/%s: %v", name, err)
		}
		if len(docs) == 0 {
			t.Errorf("k8s/%s: no YAML documents", name)
		}
	}
}

func TestImageHasTag(t *testing.T) {
	cases := map[string]bool{
		"busybox:1.36":                   true,
		"quay.io/frrouting/frr:9.1.0":    true,
		"registry.k8s.io/etcd:3.5.21-0":  true,
		"localhost:5000/ratchet:latest":  true,
		"busybox@sha256:0123456789abcde": true,
		"busybox":                        false,
		"busybox:":                       false,
		"localhost:5000/ratchet":         false,
		"":                               false,
	}
	for image, want := range cases {
		if got := imageHasTag(image); got != want {
			t.Errorf("imageHasTag(%q) = %v, want %v", image, got, want)
		}
	}
}

func TestEveryContainerImageHasATag(t *testing.T) {
	n := 0
	for name, ms := range loadManifests(t) {
		for _, m := range ms {
			spec := podSpec(m.obj)
			if spec == nil {
				continue
			}
			for _, c := range containers(spec) {
				n++
				if !imageHasTag(c.Image) {
					t.Errorf("k8s/%s %s: container %s: image %q has no tag", name, m, c.Name, c.Image)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no containers found")
	}
}

func TestInstallerNetconfIsTheClusterExample(t *testing.T) {
	all := loadManifests(t)
	cm, ok := find[*corev1.ConfigMap](all, "ratchet-netconf")
	if !ok {
		t.Fatal("ConfigMap ratchet-netconf not found")
	}
	var inCM, inFile any
	if err := json.Unmarshal([]byte(cm.Data["10-ratchet.conf"]), &inCM); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readFile(t, "10-ratchet.conf"), &inFile); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inCM, inFile) {
		t.Error("ConfigMap ratchet-netconf's 10-ratchet.conf differs from examples/10-ratchet.conf")
	}
}

func TestNetconfReachesTheEtcdService(t *testing.T) {
	all := loadManifests(t)
	c, err := config.Load(readFile(t, "10-ratchet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	svc, ok := find[*corev1.Service](all, "ratchet-etcd")
	if !ok {
		t.Fatal("Service ratchet-etcd not found")
	}
	host, port, err := endpointHostPort(c.Etcd.Endpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	if host != svc.Spec.ClusterIP || len(svc.Spec.Ports) == 0 || int(svc.Spec.Ports[0].Port) != port {
		t.Errorf("netconf endpoint %s is not Service ratchet-etcd (%s:%v)", c.Etcd.Endpoints[0], svc.Spec.ClusterIP, svc.Spec.Ports)
	}
	sts, ok := find[*appsv1.StatefulSet](all, "ratchet-etcd")
	if !ok {
		t.Fatal("StatefulSet ratchet-etcd not found")
	}
	args := sts.Spec.Template.Spec.Containers[0].Args
	if c.Etcd.API == "v2" && !slices.Contains(args, "--enable-v2=true") {
		t.Errorf("netconf uses etcd API v2 but etcd runs without --enable-v2=true: %v", args)
	}
	if !sts.Spec.Template.Spec.HostNetwork {
		t.Error("etcd must not depend on pod networking (ratchet asks it about every pod): hostNetwork")
	}
}

func TestExamplePodsAreTheAnnouncedOnes(t *testing.T) {
	all := loadManifests(t)
	announced := map[string]bool{}
	for _, ms := range all {
		for _, m := range ms {
			cm, ok := m.obj.(*corev1.ConfigMap)
			if !ok || cm.Data["topology.yaml"] == "" {
				continue
			}
			topo, err := parseTopology([]byte(cm.Data["topology.yaml"]))
			if err != nil {
				t.Fatalf("ConfigMap %s: %v", cm.Name, err)
			}
			for _, p := range topo.Pods {
				announced[topo.Namespace+"/"+p.Name] = true
			}
		}
	}
	pods := map[string]bool{}
	for _, file := range []string{"pods-pair.yaml", "pods-router-chain.yaml"} {
		for _, m := range all[file] {
			if p, ok := m.obj.(*corev1.Pod); ok {
				key := p.Namespace + "/" + p.Name
				pods[key] = true
				if !announced[key] {
					t.Errorf("k8s/%s: pod %s is in no announced topology", file, key)
				}
			}
		}
	}
	for key := range announced {
		if !pods[key] {
			t.Errorf("announced pod %s has no Pod in pods-*.yaml", key)
		}
	}
}

func TestReferencedConfigMapsAndServiceAccountsExist(t *testing.T) {
	all := loadManifests(t)
	for name, ms := range all {
		for _, m := range ms {
			spec := podSpec(m.obj)
			if spec == nil {
				continue
			}
			ns := m.obj.GetNamespace()
			if sa := spec.ServiceAccountName; sa != "" {
				if o, ok := find[*corev1.ServiceAccount](all, sa); !ok || o.Namespace != ns {
					t.Errorf("k8s/%s %s: ServiceAccount %s/%s not in the examples", name, m, ns, sa)
				}
			}
			for _, v := range spec.Volumes {
				if v.ConfigMap == nil {
					continue
				}
				if o, ok := find[*corev1.ConfigMap](all, v.ConfigMap.Name); !ok || o.Namespace != ns {
					t.Errorf("k8s/%s %s: ConfigMap %s/%s not in the examples", name, m, ns, v.ConfigMap.Name)
				}
			}
		}
	}
}

func TestAnnouncerJobsReadTheirTopology(t *testing.T) {
	n := 0
	for name, ms := range loadManifests(t) {
		for _, m := range ms {
			job, ok := m.obj.(*batchv1.Job)
			if !ok {
				continue
			}
			n++
			c := job.Spec.Template.Spec.Containers[0]
			want := []string{"announcer", "--file", "/topology/topology.yaml"}
			if !slices.Equal(c.Command, want) {
				t.Errorf("k8s/%s %s: command %v, want %v", name, m, c.Command, want)
			}
			env := map[string]bool{}
			for _, e := range c.Env {
				env[e.Name] = true
			}
			for _, e := range []string{"ETCD_ENDPOINTS", "ETCD_API", "ETCD_PREFIX"} {
				if !env[e] {
					t.Errorf("k8s/%s %s: no %s", name, m, e)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no announcer Job")
	}
}

func TestRolesGrantAtMostReadingPods(t *testing.T) {
	readPods := func(r rbacv1.PolicyRule) bool {
		return slices.Equal(r.APIGroups, []string{""}) && slices.Equal(r.Resources, []string{"pods"}) &&
			!slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" })
	}
	for name, ms := range loadManifests(t) {
		for _, m := range ms {
			var rules []rbacv1.PolicyRule
			switch o := m.obj.(type) {
			case *rbacv1.Role:
				rules = o.Rules
			case *rbacv1.ClusterRole:
				// ratchetd's only: it watches its node's pods in every
				// namespace and records Events on them.
				if name != "ratchetd-daemonset.yaml" || o.Name != "ratchetd" {
					t.Errorf("k8s/%s %s: the only ClusterRole is ratchetd's", name, m)
				}
				createEvents := func(r rbacv1.PolicyRule) bool {
					return slices.Equal(r.APIGroups, []string{""}) && slices.Equal(r.Resources, []string{"events"}) &&
						slices.Equal(r.Verbs, []string{"create"})
				}
				for i, r := range o.Rules {
					if !readPods(r) && !createEvents(r) {
						t.Errorf("k8s/%s %s: rules[%d] grants more than reading pods and creating events: %+v", name, m, i, r)
					}
				}
				continue
			default:
				continue
			}
			for i, r := range rules {
				if !readPods(r) {
					t.Errorf("k8s/%s %s: rules[%d] grants more than reading pods: %+v", name, m, i, r)
				}
			}
		}
	}
}

// TestBrokenManifestsAreRejected makes sure the checks above can fail: each
// case breaks a copy of a real manifest and expects an error that names the
// fault.
func TestBrokenManifestsAreRejected(t *testing.T) {
	cases := []struct {
		name, file, old, new, wantErr string
	}{
		{"misspelt field", "pods-pair.yaml", "  containers:", "  contianers:", `unknown field "spec.contianers"`},
		{"misspelt nested field", "installer-daemonset.yaml", "imagePullPolicy:", "imagePulPolicy:", "imagePulPolicy"},
		{"field in the wrong case", "pods-pair.yaml", "      image:", "      Image:", "Image"},
		{"string for an integer", "etcd.yaml", "replicas: 3", `replicas: "three"`, "replicas"},
		{"unknown kind", "pods-pair.yaml", "kind: Pod", "kind: Pood", `unknown apiVersion/kind "v1/Pood"`},
		{"wrong apiVersion", "etcd.yaml", "apiVersion: apps/v1", "apiVersion: apps/v1beta2", "apps/v1beta2/StatefulSet"},
		{"duplicate key", "pods-pair.yaml", "  namespace: default\n", "  namespace: default\n  namespace: other\n", "namespace"},
		{"tab", "pods-pair.yaml", "  containers:\n", "  containers:\n\t\n", "tab character"},
		{"untagged image", "pods-pair.yaml", "busybox:1.36", "busybox", `image "busybox" has no tag`},
		{"netconf misspelt field", "installer-daemonset.yaml", `"logLevel"`, `"logLevle"`, "logLevle"},
		{"netconf invalid value", "installer-daemonset.yaml", `"api": "v2"`, `"api": "v4"`, "etcd.api"},
		{"topology misspelt field", "announcer-job.yaml", "ifname: in2", "ifnmae: in2", "ifnmae"},
		{"topology unknown pod", "pods-router-chain.yaml", "b: {pod: centosb", "b: {pod: centosc", `pod "centosc" is not in pods`},
		{"topology bad ifname", "pods-router-chain.yaml", "ifname: mid1, ip: 203.0.113.1/30", "ifname: mid1-is-far-too-long, ip: 203.0.113.1/30", "longer than 15 bytes"},
		{"topology ends in two subnets", "announcer-job.yaml", "192.168.2.101/24", "192.168.3.101/24", "not two addresses of one subnet"},
		{"sidecar bad address", "announcer-job.yaml", "value: 198.51.100.1/30\n        - name: PAIR_NAME", "value: 198.51.100.300/30\n        - name: PAIR_NAME", "not an IP address"},
		{"announcer misspelt flag", "pods-router-chain.yaml", `"--file"`, `"--flie"`, "flie"},
		{"announcer topology not mounted", "announcer-job.yaml", "mountPath: /topology\n", "mountPath: /topo\n", "in no volume mount"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := string(readFile(t, filepath.Join("k8s", tc.file)))
			if _, err := checkManifests([]byte(data)); err != nil {
				t.Fatalf("the original k8s/%s fails: %v", tc.file, err)
			}
			if !strings.Contains(data, tc.old) {
				t.Fatalf("k8s/%s has no %q to break", tc.file, tc.old)
			}
			broken := strings.Replace(data, tc.old, tc.new, 1)
			_, err := checkManifests([]byte(broken))
			if err == nil {
				t.Fatalf("k8s/%s with %q -> %q passed the check", tc.file, tc.old, tc.new)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error does not name the fault %q: %v", tc.wantErr, err)
			}
		})
	}
}

// chainShape is a topology's pods and, per link, its ends' pods and
// addresses: what the router chain examples must agree on (interface names
// and MTUs may differ).
func chainShape(t *testing.T, what string, data []byte) []string {
	t.Helper()
	topo, err := parseTopology(data)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var shape []string
	for _, p := range topo.Pods {
		shape = append(shape, "pod "+topo.Namespace+"/"+p.Name)
	}
	for _, l := range topo.Links {
		shape = append(shape, "link "+l.A.Pod+" "+l.A.IP+" -> "+l.B.Pod+" "+l.B.IP)
	}
	return shape
}

func TestRouterChainTopologyIsTheKubernetesExamplesChain(t *testing.T) {
	file := chainShape(t, "router-chain.topology.yaml", readFile(t, "router-chain.topology.yaml"))
	for _, m := range loadManifests(t)["pods-router-chain.yaml"] {
		if cm, ok := m.obj.(*corev1.ConfigMap); ok && cm.Data["topology.yaml"] != "" {
			k8s := chainShape(t, "ConfigMap "+cm.Name, []byte(cm.Data["topology.yaml"]))
			if !reflect.DeepEqual(file, k8s) {
				t.Errorf("router-chain.topology.yaml and ConfigMap %s describe different chains:\n%q\n%q", cm.Name, file, k8s)
			}
			return
		}
	}
	t.Fatal("k8s/pods-router-chain.yaml holds no topology ConfigMap")
}
