package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// MaxLinkIDLen bounds the LINK of `link … NS/LINK`, in bytes: two escaped
// ends of a DNS-label pod and a 15-byte interface name fit with room.
const MaxLinkIDLen = 512

// netemFlags are the impairment flags of `link set`, in netem.Spec order,
// with their help.
var netemFlags = []struct{ name, help string }{
	{"delay", `delay added to each packet, e.g. 20ms`},
	{"jitter", `random variation of the delay, e.g. 5ms (needs a delay)`},
	{"loss", `packets dropped, e.g. 0.5%`},
	{"rate", `rate limit, e.g. 100mbit, 512kbit`},
	{"corrupt", `packets with a corrupted bit, e.g. 0.1%`},
	{"duplicate", `packets sent twice, e.g. 1%`},
	{"reorder", `packets sent ahead of the delayed others, e.g. 25% (needs a delay)`},
}

// specField returns a pointer to the field of s that flag name sets.
func specField(s *netem.Spec, name string) *string {
	switch name {
	case "delay":
		return &s.Delay
	case "jitter":
		return &s.Jitter
	case "loss":
		return &s.Loss
	case "rate":
		return &s.Rate
	case "corrupt":
		return &s.Corrupt
	case "duplicate":
		return &s.Duplicate
	case "reorder":
		return &s.Reorder
	}
	panic("ctl: no netem field " + name)
}

// Verbs of the link command.
const (
	linkSet   = "set"
	linkClear = "clear"
	linkDown  = "down"
	linkUp    = "up"
)

// linkOp is one `link` command line, parsed and validated: what to change
// on which link record.
type linkOp struct {
	verb   string
	ns, id string
	// ends are the ends set or cleared: "a", "b" or both.
	ends []string
	// values are the netem flags given to set (flag name → value; ""
	// removes the field).
	values map[string]string
}

// inputError is a well-formed command line naming something that is not
// there: exit code 2, without the pointer to the help.
type inputError struct{ msg string }

// Error returns the message.
func (e *inputError) Error() string { return e.msg }

func runLink(ctx context.Context, a *app, args []string) error {
	op, err := parseLink(a, args)
	if err != nil {
		return err
	}
	kv, k, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer kv.Close()
	rec, changed, err := op.apply(ctx, kv, k)
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, op.describe(&rec, changed))
	return nil
}

// parseLink reads `link VERB NS/LINK [flags]`, flags anywhere, and
// validates every value; nothing is read from etcd.
func parseLink(a *app, args []string) (*linkOp, error) {
	if len(args) == 0 {
		return nil, usagef("link: want set, clear, down or up")
	}
	op := &linkOp{verb: args[0], values: map[string]string{}}
	name := "link " + op.verb
	fs := a.flagSet(name)
	var end *string
	switch op.verb {
	case linkSet, linkClear:
		end = fs.String("end", "", "a or b: only this end's egress (default: both ends)")
	case linkDown, linkUp:
	default:
		return nil, usagef("link: unknown %q: want set, clear, down or up", op.verb)
	}
	if op.verb == linkSet {
		for _, f := range netemFlags {
			fs.String(f.name, "", f.help)
		}
	}
	pos, err := parse(fs, args[1:])
	if err != nil {
		return nil, err
	}
	if len(pos) != 1 {
		return nil, usagef("%s: want one NS/LINK (a link ID as status prints it), got %q", name, pos)
	}
	if op.ns, op.id, err = linkName(a.namespace, pos[0]); err != nil {
		return nil, usagef("%s: %v", name, err)
	}
	if end != nil {
		switch *end {
		case "":
			op.ends = []string{"a", "b"}
		case "a", "b":
			op.ends = []string{*end}
		default:
			return nil, usagef("%s: --end %q: want a or b", name, *end)
		}
	}
	if op.verb != linkSet {
		return op, nil
	}
	fs.Visit(func(f *flag.Flag) {
		for _, nf := range netemFlags {
			if f.Name == nf.name {
				op.values[f.Name] = f.Value.String()
			}
		}
	})
	if len(op.values) == 0 {
		return nil, usagef("%s: give at least one of --delay, --jitter, --loss, --rate, --corrupt, --duplicate, --reorder (link clear removes the impairment)", name)
	}
	for _, f := range netemFlags {
		v, ok := op.values[f.name]
		if !ok {
			continue
		}
		v, err := checkFlagValue(f.name, v)
		if err != nil {
			return nil, usagef("%s: %v", name, err)
		}
		op.values[f.name] = v
	}
	return op, nil
}

// checkFlagValue validates the value of one netem flag alone and returns
// it normalized: "" for a value that removes the field ("", "0", or one
// that parses to zero such as "0%" or "0ms").
func checkFlagValue(name, v string) (string, error) {
	if v == "" || v == "0" {
		return "", nil
	}
	var s netem.Spec
	*specField(&s, name) = v
	if name == "jitter" || name == "reorder" {
		// Only the value is checked here; that a delay goes with it is
		// checked on the end's merged spec.
		s.Delay = "1ms"
	}
	p, err := s.Params()
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), netem.ErrInvalid.Error()+": netem."+name+": ")
		return "", fmt.Errorf("--%s %s", name, msg)
	}
	if zeroField(p, name) {
		return "", nil
	}
	return v, nil
}

// zeroField reports whether field name of p impairs nothing.
func zeroField(p netem.Params, name string) bool {
	switch name {
	case "delay":
		return p.Delay == 0
	case "jitter":
		return p.Jitter == 0
	case "loss":
		return p.Loss == 0
	case "rate":
		return p.Rate == 0
	case "corrupt":
		return p.Corrupt == 0
	case "duplicate":
		return p.Duplicate == 0
	case "reorder":
		return p.Reorder == 0
	}
	return true
}

// linkName splits NS/LINK (or LINK, in namespace ns or the default) and
// validates both; the link ID is returned canonical (its ends sorted, as
// store.LinkID orders them), so either order names the link.
func linkName(ns, arg string) (string, string, error) {
	id := arg
	if i := strings.IndexByte(arg, '/'); i >= 0 {
		if ns != "" && ns != arg[:i] {
			return "", "", fmt.Errorf("%q names namespace %q but -n says %q", metadata.Clip(arg, 80), arg[:i], ns)
		}
		ns, id = arg[:i], arg[i+1:]
		if ns == "" {
			return "", "", fmt.Errorf("%q: namespace before '/': not a DNS label", metadata.Clip(arg, 80))
		}
	}
	if ns == "" {
		ns = metadata.DefaultNamespace
	}
	if !isDNSLabel(ns) {
		return "", "", fmt.Errorf("namespace %q: not a DNS label", metadata.Clip(ns, 80))
	}
	const want = `want a link ID as status prints it, "POD.IFNAME--POD.IFNAME"`
	if len(id) > MaxLinkIDLen {
		return "", "", fmt.Errorf("link %q: longer than %d bytes", metadata.Clip(id, 80), MaxLinkIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return "", "", fmt.Errorf("link %q: %s (byte %d is %q)", metadata.Clip(id, 80), want, i, c)
		}
	}
	ends := strings.Split(id, "--")
	if len(ends) != 2 || !isEndID(ends[0]) || !isEndID(ends[1]) {
		return "", "", fmt.Errorf("link %q: %s", metadata.Clip(id, 80), want)
	}
	sort.Strings(ends)
	return ns, ends[0] + "--" + ends[1], nil
}

// isEndID reports whether s has the shape of store.EndID: "pod.ifname",
// both non-empty, no '-' at either edge.
func isEndID(s string) bool {
	pod, ifname, ok := strings.Cut(s, ".")
	return ok && pod != "" && ifname != "" && s[0] != '-' && s[len(s)-1] != '-'
}

// isDNSLabel reports whether s is an RFC 1123 label, as namespaces are.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > metadata.MaxDNSLabelLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// apply changes the link record with a compare-and-swap (store.Update). It
// returns the record as it is now and whether it was written; an unknown
// link is an inputError naming it and its namespace, an invalid merged
// impairment a usage error, and in both cases nothing is written.
func (op *linkOp) apply(ctx context.Context, kv store.Store, k store.Keys) (store.LinkRecord, bool, error) {
	changed := false
	rec, _, err := store.Update(ctx, kv, k.Link(op.ns, op.id), func(r *store.LinkRecord) error {
		changed = false
		if err := op.change(r); err != nil {
			return err
		}
		changed = true
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rec, false, &inputError{msg: fmt.Sprintf("link %s: no such link in namespace %s (ratchetctl status -n %s lists them)",
			op.id, op.ns, op.ns)}
	case errors.Is(err, store.ErrUnavailable):
		return rec, false, fmt.Errorf("link %s/%s: etcd: %w", op.ns, op.id, err)
	case err != nil:
		var ue *usageError
		if errors.As(err, &ue) {
			return rec, false, err
		}
		return rec, false, fmt.Errorf("link %s/%s: %w", op.ns, op.id, err)
	}
	return rec, changed, nil
}

// change applies op to r; store.ErrUnchanged when r is already so.
func (op *linkOp) change(r *store.LinkRecord) error {
	changed := false
	switch op.verb {
	case linkDown, linkUp:
		want := store.AdminUp
		if op.verb == linkDown {
			want = store.AdminDown
		}
		if r.IsDown() == (want == store.AdminDown) {
			return store.ErrUnchanged
		}
		r.Admin = want
		return nil
	case linkSet, linkClear:
		for _, name := range op.ends {
			end := &r.A
			if name == "b" {
				end = &r.B
			}
			spec, err := op.endSpec(end.Netem)
			if err != nil {
				return usagef("link %s %s/%s: end %s (%s): %v", op.verb, op.ns, op.id, name, end.Pod+"."+end.IfName, err)
			}
			if !sameSpec(spec, end.Netem) {
				end.Netem = spec
				changed = true
			}
		}
	}
	if !changed && r.NetemSet {
		return store.ErrUnchanged
	}
	r.NetemSet = true
	return nil
}

// endSpec is an end's impairment after op: nil for clear, else cur with
// the flags given merged in; nil when nothing is left.
func (op *linkOp) endSpec(cur *netem.Spec) (*netem.Spec, error) {
	if op.verb == linkClear {
		return nil, nil
	}
	var s netem.Spec
	if cur != nil {
		s = *cur
	}
	for name, v := range op.values {
		*specField(&s, name) = v
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w (flags: %s)", err, flagHint(err))
	}
	if s.IsZero() {
		return nil, nil
	}
	return &s, nil
}

// flagHint names the flags behind the netem fields an error names.
func flagHint(err error) string {
	var hints []string
	for _, f := range netemFlags {
		if strings.Contains(err.Error(), "netem."+f.name+":") {
			hints = append(hints, "--"+f.name)
		}
	}
	if len(hints) == 0 {
		return "see ratchetctl help"
	}
	return strings.Join(hints, ", ")
}

// sameSpec compares two impairments, nil being none.
func sameSpec(a, b *netem.Spec) bool {
	value := func(s *netem.Spec) netem.Spec {
		if s == nil {
			return netem.Spec{}
		}
		return *s
	}
	return value(a) == value(b)
}

// describe is the line printed after op: the link and its state now.
func (op *linkOp) describe(r *store.LinkRecord, changed bool) string {
	s := fmt.Sprintf("link %s/%s: ", op.ns, op.id)
	switch op.verb {
	case linkDown, linkUp:
		s += "admin " + adminState(r)
	default:
		s += "a " + specText(r.A.Netem) + "; b " + specText(r.B.Netem)
	}
	if !changed {
		return s + " (unchanged)"
	}
	return s
}

// adminState is "up" or "down", never empty.
func adminState(r *store.LinkRecord) string {
	if r.IsDown() {
		return store.AdminDown
	}
	return store.AdminUp
}

// specText formats an impairment compactly ("loss 30% rate 1mbit"), "none"
// for nil; a spec that does not validate (a record written by something
// else) is shown quoted and marked invalid.
func specText(s *netem.Spec) string {
	if s == nil || s.IsZero() {
		return "none"
	}
	p, err := s.Params()
	if err != nil {
		var parts []string
		for _, f := range netemFlags {
			if v := *specField(s, f.name); v != "" {
				parts = append(parts, fmt.Sprintf("%s %q", f.name, metadata.Clip(v, netem.MaxFieldLen)))
			}
		}
		return "invalid: " + strings.Join(parts, " ")
	}
	return p.String()
}
