package examples

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/ratchet-cni/ratchet/internal/config"
)

// object is a Kubernetes object the examples may hold.
type object = metav1.Object

// kinds maps "apiVersion/kind" to a new typed object. A kind not listed
// here fails the check.
var kinds = map[string]func() object{
	"v1/ConfigMap":                                    func() object { return &corev1.ConfigMap{} },
	"v1/Pod":                                          func() object { return &corev1.Pod{} },
	"v1/Service":                                      func() object { return &corev1.Service{} },
	"v1/ServiceAccount":                               func() object { return &corev1.ServiceAccount{} },
	"apps/v1/DaemonSet":                               func() object { return &appsv1.DaemonSet{} },
	"apps/v1/Deployment":                              func() object { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                             func() object { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                                    func() object { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":                   func() object { return &policyv1.PodDisruptionBudget{} },
	"rbac.authorization.k8s.io/v1/Role":               func() object { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":        func() object { return &rbacv1.RoleBinding{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() object { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() object { return &rbacv1.ClusterRoleBinding{} },
}

// manifest is one decoded YAML document of a manifest file.
type manifest struct {
	doc  int    // index of the document in its file, from 0
	kind string // apiVersion/kind
	obj  object
}

// String names the document for error messages.
func (m manifest) String() string {
	return fmt.Sprintf("document %d (%s %s)", m.doc, m.kind, m.obj.GetName())
}

// splitYAML returns the non-empty documents of a multi-document YAML file as
// JSON, each parsed by a YAML parser that rejects duplicate keys.
func splitYAML(data []byte) ([][]byte, error) {
	if i := bytes.IndexByte(data, '\t'); i >= 0 {
		line := bytes.Count(data[:i], []byte("\n")) + 1
		return nil, fmt.Errorf("line %d: tab character (YAML indents with spaces)", line)
	}
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for n := 0; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if s := string(bytes.TrimSpace(j)); s == "null" || s == "" {
			continue // comments only
		}
		docs = append(docs, j)
	}
}

// strictUnmarshal decodes JSON into v as the API server's strict decoding
// does: field names are case-sensitive, and unknown or duplicate fields are
// errors.
func strictUnmarshal(data []byte, v any) error {
	strictErrs, err := kjson.UnmarshalStrict(data, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// decodeManifests decodes every document of a manifest file strictly into
// the Kubernetes API type its apiVersion and kind name.
func decodeManifests(data []byte) ([]manifest, error) {
	docs, err := splitYAML(data)
	if err != nil {
		return nil, err
	}
	var out []manifest
	var errs []error
	for i, j := range docs {
		var tm metav1.TypeMeta
		if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		kind := tm.APIVersion + "/" + tm.Kind
		newObj, ok := kinds[kind]
		if !ok {
			errs = append(errs, fmt.Errorf("document %d: unknown apiVersion/kind %q", i, kind))
			continue
		}
		obj := newObj()
		if err := strictUnmarshal(j, obj); err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s): %w", i, kind, err))
			continue
		}
		out = append(out, manifest{doc: i, kind: kind, obj: obj})
	}
	return out, errors.Join(errs...)
}

// checkManifests decodes a manifest file and checks what the API types do
// not: every object is named and namespaced (except cluster-scoped kinds),
// every image has a tag, and netconfs and topologies in ConfigMaps are valid.
func checkManifests(data []byte) ([]manifest, error) {
	ms, err := decodeManifests(data)
	errs := []error{err}
	for _, m := range ms {
		if err := checkObject(m.obj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
		}
	}
	return ms, errors.Join(errs...)
}

func checkObject(obj object) error {
	var errs []error
	if obj.GetName() == "" {
		errs = append(errs, errors.New("metadata.name is empty"))
	}
	switch obj.(type) {
	case *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
	default:
		if obj.GetNamespace() == "" {
			errs = append(errs, errors.New("metadata.namespace is empty (say where it goes)"))
		}
	}
	if spec := podSpec(obj); spec != nil {
		errs = append(errs, checkImages(spec))
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		errs = append(errs, checkConfigMap(cm))
	}
	if spec := podSpec(obj); spec != nil {
		errs = append(errs, checkAnnouncers(obj, spec))
	}
	return errors.Join(errs...)
}

// podSpec returns the pod spec of a Pod or of a workload's pod template.
func podSpec(obj object) *corev1.PodSpec {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.Spec
	case *appsv1.DaemonSet:
		return &o.Spec.Template.Spec
	case *appsv1.Deployment:
		return &o.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &o.Spec.Template.Spec
	case *batchv1.Job:
		return &o.Spec.Template.Spec
	}
	return nil
}

// containers returns the init and main containers of a pod spec.
func containers(spec *corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
}

func checkImages(spec *corev1.PodSpec) error {
	var errs []error
	for _, c := range containers(spec) {
		if !imageHasTag(c.Image) {
			errs = append(errs, fmt.Errorf("container %s: image %q has no tag or digest", c.Name, c.Image))
		}
	}
	return errors.Join(errs...)
}

// imageHasTag reports whether an image reference names a tag or a digest
// (a ':' in the last path element is a tag; one before it is a registry port).
func imageHasTag(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(last, ":")
	return i > 0 && i < len(last)-1
}

// roleLabel marks the ConfigMaps whose data the checks validate: "netconf"
// (every key is a netconf) or "topology" (topology.yaml is an announcer
// topology).
const roleLabel = "ratchet.example/role"

// checkConfigMap validates the netconfs or the topology a ConfigMap holds.
func checkConfigMap(cm *corev1.ConfigMap) error {
	role := cm.Labels[roleLabel]
	if _, ok := cm.Data["topology.yaml"]; ok && role != "topology" {
		return fmt.Errorf("holds topology.yaml but is not labelled %s: topology", roleLabel)
	}
	var errs []error
	switch role {
	case "":
	case "netconf":
		if len(cm.Data) == 0 {
			errs = append(errs, errors.New("no netconf"))
		}
		for key, value := range cm.Data {
			if err := checkNetconf([]byte(value)); err != nil {
				errs = append(errs, fmt.Errorf("data[%s]: %w", key, err))
			}
		}
	case "topology":
		if _, err := parseTopology([]byte(cm.Data["topology.yaml"])); err != nil {
			errs = append(errs, fmt.Errorf("data[topology.yaml]: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("label %s: %q is not netconf or topology", roleLabel, role))
	}
	return errors.Join(errs...)
}

// checkNetconf loads a netconf with config.Load and also decodes it strictly
// into config.NetConf: Load ignores unknown fields, so a misspelt optional
// field would otherwise pass silently as its default.
func checkNetconf(data []byte) error {
	if _, err := config.Load(data); err != nil {
		return fmt.Errorf("config.Load: %w", err)
	}
	if err := strictUnmarshal(data, &config.NetConf{}); err != nil {
		return fmt.Errorf("strict netconf: %w", err)
	}
	return nil
}

// endpointHostPort returns host and port of an http(s) URL like
// http://10.96.232.136:2379.
func endpointHostPort(raw string) (string, int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return "", 0, fmt.Errorf("%q has no port: %w", raw, err)
	}
	return u.Hostname(), port, nil
}
