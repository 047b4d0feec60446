package announce

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/etcdflag"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// DefaultMasterIfName is the master delegate's interface that links may
// not use, unless --master-ifname says otherwise.
const DefaultMasterIfName = "eth0"

// podSetting is one pod metadata setting: a flag, its environment
// variable (those of the first ratchet's announcer sidecar) and its key.
type podSetting struct{ flag, env, key, usage string }

var podSettings = []podSetting{
	{"pod-name", "POD_NAME", metadata.KeyPodName, "the pod's name; with --file, the one pod of the topology to announce"},
	{"namespace", "POD_NAMESPACE", metadata.KeyNamespace, "the pod's namespace (default default)"},
	{"primary", "PRIMARY", metadata.KeyPrimary, `"true": the pod declares the local/pair link; "false": it waits for it`},
	{"local-ifname", "LOCAL_IFNAME", metadata.KeyLocalIfName, "the pod's end of the local/pair link: interface"},
	{"local-ip", "LOCAL_IP", metadata.KeyLocalIP, "the pod's end: address, a CIDR (a bare IPv4 address gets /24)"},
	{"pair-name", "PAIR_NAME", metadata.KeyPairName, "the peer pod of the local/pair link"},
	{"pair-ifname", "PAIR_IFNAME", metadata.KeyPairIfName, "the peer's end: interface"},
	{"pair-ip", "PAIR_IP", metadata.KeyPairIP, "the peer's end: address"},
	{"netem", "NETEM", metadata.KeyNetem, `impairment of both ends of the local/pair link, JSON as ratchet.netem: {"delay":"20ms","jitter":..,"loss":"0.5%","rate":"100mbit","corrupt":..,"duplicate":..,"reorder":..}`},
	{"links", "LINKS", metadata.KeyLinks, `more links the pod declares, JSON as ratchet.links: [{"peer":..,"ifname":..,"ip":..,"peer_ifname":..,"peer_ip":..,"mtu":..,"netem":{..},"local_netem":{..},"peer_netem":{..}}]`},
	{"target-pod", "TARGET_POD", metadata.KeyTargetPod, "kept in the record (ratchet.target_pod)"},
	{"target-container", "TARGET_CONTAINER", metadata.KeyTargetContainer, "kept in the record (ratchet.target_container)"},
	{"public-ip", "PUBLIC_IP", metadata.KeyPublicIP, "kept in the record (ratchet.public_ip)"},
}

// Options are the announcer's settings after flags and environment.
type Options struct {
	// Labels are the pod settings by label key (empty values left out).
	Labels map[string]string
	// File is a topology file (--file); Labels then only select a pod.
	File string
	// Master is the master delegate's interface (--master-ifname).
	Master string
	// Wait, DeleteOnExit, Delete, Force and Validate are the modes.
	Wait, DeleteOnExit, Delete, Force, Validate bool
	// Etcd is where to announce.
	Etcd store.Config
}

// fieldOf names a label key's setting in messages: "--local-ip/LOCAL_IP";
// an entry of ratchet.links becomes "--links/LINKS[2].ip", a field of
// ratchet.netem "--netem/NETEM.loss".
func fieldOf(key string) string {
	for _, s := range podSettings {
		if key == s.key {
			return "--" + s.flag + "/" + s.env
		}
		rest, ok := strings.CutPrefix(key, s.key)
		if ok && (s.key == metadata.KeyLinks && strings.HasPrefix(rest, "[") || s.key == metadata.KeyNetem && strings.HasPrefix(rest, ".")) {
			return "--" + s.flag + "/" + s.env + rest
		}
	}
	return key
}

// newFlagSet declares the announcer's flags on o.
func newFlagSet(o *Options, etcd *etcdflag.Flags, pod map[string]*string, str map[string]*string) *flag.FlagSet {
	fs := flag.NewFlagSet("announcer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, s := range podSettings {
		pod[s.flag] = fs.String(s.flag, "", s.usage+" [$"+s.env+"]")
	}
	str["file"] = fs.String("file", "", "a topology file (YAML) describing many pods and links [$TOPOLOGY_FILE]")
	str["master-ifname"] = fs.String("master-ifname", "", "the master delegate's interface, which links may not use (default "+DefaultMasterIfName+") [$MASTER_IFNAME]")
	fs.BoolVar(&o.Wait, "wait", false, "after announcing, keep running until SIGTERM or SIGINT (a sidecar)")
	fs.BoolVar(&o.DeleteOnExit, "delete-on-exit", false, "with --wait: remove the records when stopped")
	fs.BoolVar(&o.Delete, "delete", false, "remove what the input would announce (only records equal to it, unless --force)")
	fs.BoolVar(&o.Force, "force", false, "with --delete: remove the pods' records even when they differ")
	fs.BoolVar(&o.Validate, "validate", false, "only validate the input and print the records as JSON; etcd is not contacted")
	etcd.Register(fs)
	return fs
}

// ParseArgs reads the announcer's flags (args without the program name)
// and environment (getenv; nil means none). Flags win over variables.
// -h and --help return flag.ErrHelp; every other error is an *InputError.
func ParseArgs(args []string, getenv func(string) string) (*Options, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	o := &Options{Labels: map[string]string{}}
	var etcd etcdflag.Flags
	pod, str := map[string]*string{}, map[string]*string{}
	fs := newFlagSet(o, &etcd, pod, str)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &InputError{Field: "arguments", Reason: err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, &InputError{Field: "arguments", Value: strings.Join(fs.Args(), " "), Reason: "unexpected (announcer takes flags only)"}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pick := func(name, env string, v *string) string {
		if set[name] {
			return *v
		}
		return getenv(env)
	}
	for _, s := range podSettings {
		if v := pick(s.flag, s.env, pod[s.flag]); v != "" {
			o.Labels[s.key] = v
		}
	}
	o.File = pick("file", "TOPOLOGY_FILE", str["file"])
	if o.Master = pick("master-ifname", "MASTER_IFNAME", str["master-ifname"]); o.Master == "" {
		o.Master = DefaultMasterIfName
	}
	if err := o.checkModes(); err != nil {
		return nil, err
	}
	cfg, err := etcd.Config(getenv)
	if err != nil {
		return nil, &InputError{Field: "etcd", Reason: err.Error()}
	}
	o.Etcd = cfg
	return o, nil
}

// checkModes rejects combinations of modes that make no sense.
func (o *Options) checkModes() error {
	switch {
	case o.Delete && o.Wait:
		return &InputError{Field: "--delete", Reason: "cannot be combined with --wait"}
	case o.DeleteOnExit && !o.Wait:
		return &InputError{Field: "--delete-on-exit", Reason: "only with --wait"}
	case o.Force && !o.Delete:
		return &InputError{Field: "--force", Reason: "only with --delete"}
	}
	return nil
}

// Records validates the input and returns the records it announces: the
// pod of the settings, or the pods of the topology file (only the one
// named by --pod-name when given).
func (o *Options) Records() ([]Record, error) {
	if o.File == "" {
		if o.Labels[metadata.KeyPodName] == "" {
			return nil, &InputError{Field: "--pod-name/POD_NAME, --file", Reason: "nothing to announce: name a pod or a topology file"}
		}
		labels := map[string]string{metadata.KeyRatchet: "true"}
		for k, v := range o.Labels {
			labels[k] = v
		}
		r, err := FromLabels(labels, o.Master, fieldOf)
		if err != nil {
			return nil, err
		}
		return []Record{r}, nil
	}
	for _, s := range podSettings {
		if v := o.Labels[s.key]; v != "" && s.key != metadata.KeyPodName && s.key != metadata.KeyNamespace {
			return nil, &InputError{Field: fieldOf(s.key), Value: v, Reason: "cannot be combined with --file (describe the pod in the topology)"}
		}
	}
	topo, err := ReadTopology(o.File)
	if err != nil {
		return nil, err
	}
	if ns := o.Labels[metadata.KeyNamespace]; ns != "" {
		if topo.Namespace != "" && topo.Namespace != ns {
			return nil, &InputError{Field: fieldOf(metadata.KeyNamespace), Value: ns,
				Reason: fmt.Sprintf("differs from the namespace %q of %s", topo.Namespace, o.File)}
		}
		topo.Namespace = ns
	}
	recs, err := topo.Records(o.Master)
	if err != nil {
		return nil, fmt.Errorf("topology %s: %w", o.File, err)
	}
	if name := o.Labels[metadata.KeyPodName]; name != "" {
		return Select(recs, name, fieldOf(metadata.KeyPodName))
	}
	return recs, nil
}
