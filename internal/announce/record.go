// Package announce publishes pods' ratchet metadata into etcd, for pods
// whose runtime gives ratchet no Docker labels: it builds the announced
// records (label key → value, exactly as metadata.Labels writes them) from
// one pod's settings or from a topology file, validates them as the plugin
// would, and writes or removes them idempotently. It is the library behind
// the announcer binary and ratchetctl's populate.
package announce

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/metadata"
)

// Record is one pod's announced metadata.
type Record struct {
	Namespace string
	Name      string
	// Labels is what is written at store.Keys.Announce(Namespace, Name):
	// metadata.Labels of the validated pod.
	Labels map[string]string
}

// String names the record's pod: namespace/name.
func (r Record) String() string { return r.Namespace + "/" + r.Name }

// InputError is bad input: a setting, a topology field or pod metadata.
// Field names where it came from (a flag and its variable, a topology path
// such as links[2].b.ip, or a label key); Pod is namespace/name of the pod
// concerned when known.
type InputError struct {
	Pod    string
	Field  string
	Value  string
	Reason string
}

// Error formats the error as `pod ns/name: field: "value": reason`; the
// parts that are unknown are left out.
func (e *InputError) Error() string {
	var b strings.Builder
	if e.Pod != "" {
		b.WriteString("pod " + e.Pod + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	if e.Value != "" {
		fmt.Fprintf(&b, "%q: ", metadata.Clip(e.Value, 80))
	}
	b.WriteString(e.Reason)
	return b.String()
}

// IsInput reports whether err is bad input (exit code 2) rather than a
// runtime failure.
func IsInput(err error) bool {
	var e *InputError
	return errors.As(err, &e)
}

// fromMetadataError turns a metadata.Error into an InputError, naming the
// field with rename (nil keeps the label key).
func fromMetadataError(err error, pod string, rename func(string) string) error {
	var me *metadata.Error
	if !errors.As(err, &me) {
		return err
	}
	field := me.Key
	if rename != nil {
		field = rename(me.Key)
	}
	return &InputError{Pod: pod, Field: field, Value: me.Value, Reason: me.Reason}
}

// FromLabels validates one pod's labels exactly as the plugin does
// (metadata.Parse with the master interface name) and returns its record.
// Labels that do not make a ratchet pod (ratchet is not "true") are an
// error. rename maps a label key in an error to the name the user gave it
// (a flag, a variable); nil keeps the key.
func FromLabels(labels map[string]string, master string, rename func(string) string) (Record, error) {
	pod, err := metadata.Parse(labels, master)
	name := podName(labels[metadata.KeyNamespace], labels[metadata.KeyPodName])
	if err != nil {
		return Record{}, fromMetadataError(err, name, rename)
	}
	if pod == nil {
		field := metadata.KeyRatchet
		if rename != nil {
			field = rename(field)
		}
		return Record{}, &InputError{Pod: name, Field: field, Value: labels[metadata.KeyRatchet], Reason: `must be "true" for a ratchet pod`}
	}
	return recordOf(pod, master, rename)
}

// recordOf writes pod as labels and checks that they parse back (the
// plugin will parse them); the record holds the normalised labels. Parsing
// back also bounds what is written: every key is within the limits of
// metadata (MaxLinks, MaxLinksLen, MaxKeptLen, names), so a record stays
// far below etcd's request size whatever the topology.
func recordOf(pod *metadata.Pod, master string, rename func(string) string) (Record, error) {
	labels := metadata.Labels(pod)
	parsed, err := metadata.Parse(labels, master)
	if err != nil {
		return Record{}, fromMetadataError(err, podName(pod.Namespace, pod.Name), rename)
	}
	return Record{Namespace: parsed.Namespace, Name: parsed.Name, Labels: metadata.Labels(parsed)}, nil
}

// podName is namespace/name with the default namespace filled in.
func podName(ns, name string) string {
	if name == "" {
		return ""
	}
	if ns == "" {
		ns = metadata.DefaultNamespace
	}
	return ns + "/" + name
}
