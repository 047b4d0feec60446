package examples

import (
	"errors"
	"fmt"
	"net/netip"
	"path"

	corev1 "k8s.io/api/core/v1"

	"github.com/ratchet-cni/ratchet/internal/announce"
)

// parseTopology decodes a topology with the announcer's own parser and
// turns it into records as the announcer would (which validates every pod's
// metadata as ratchet does). On top of that it holds the examples to their
// conventions: an explicit namespace, every linked pod listed under pods,
// and the two ends of a link in one subnet.
func parseTopology(data []byte) (*announce.Topology, error) {
	t, err := announce.ParseTopology(data)
	if err != nil {
		return nil, err
	}
	if _, err := t.Records(announce.DefaultMasterIfName); err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	if t.Namespace == "" || len(t.Pods) == 0 || len(t.Links) == 0 {
		return nil, errors.New("an example topology names its namespace, pods and links")
	}
	listed := map[string]bool{}
	for _, p := range t.Pods {
		listed[p.Name] = true
	}
	var errs []error
	for i, l := range t.Links {
		for _, end := range []announce.End{l.A, l.B} {
			if !listed[end.Pod] {
				errs = append(errs, fmt.Errorf("links[%d]: pod %q is not in pods", i, end.Pod))
			}
		}
		if err := sameSubnet(l.A.IP, l.B.IP); err != nil {
			errs = append(errs, fmt.Errorf("links[%d]: %w", i, err))
		}
	}
	return t, errors.Join(errs...)
}

// sameSubnet checks that two link ends are distinct addresses of one subnet.
func sameSubnet(a, b string) error {
	pa, errA := netip.ParsePrefix(a)
	pb, errB := netip.ParsePrefix(b)
	if err := errors.Join(errA, errB); err != nil {
		return err
	}
	if pa.Masked() != pb.Masked() || pa.Addr() == pb.Addr() {
		return fmt.Errorf("%s and %s are not two addresses of one subnet", a, b)
	}
	return nil
}

// checkAnnouncers runs the arguments and environment of every announcer
// container of a pod spec through the announcer's own option parsing: a
// sidecar's records are built and validated; a --file announcer must find
// its topology in a mounted volume. Downward-API variables resolve to the
// object's own name and namespace.
func checkAnnouncers(obj object, spec *corev1.PodSpec) error {
	var errs []error
	for _, c := range containers(spec) {
		if len(c.Command) == 0 || c.Command[0] != "announcer" {
			continue
		}
		if err := checkAnnouncer(obj, c); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

func checkAnnouncer(obj object, c corev1.Container) error {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = obj.GetName()
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = obj.GetNamespace()
		}
	}
	args := append(append([]string{}, c.Command[1:]...), c.Args...)
	o, err := announce.ParseArgs(args, func(k string) string { return env[k] })
	if err != nil {
		return fmt.Errorf("announcer %v: %w", args, err)
	}
	if o.File != "" {
		for _, m := range c.VolumeMounts {
			if m.MountPath == path.Dir(o.File) {
				return nil
			}
		}
		return fmt.Errorf("topology %s is in no volume mount", o.File)
	}
	if _, err := o.Records(); err != nil {
		return fmt.Errorf("announcer %v: %w", args, err)
	}
	return nil
}
