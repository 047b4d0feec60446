package metadata

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Labels is the reverse of Parse: the labels (or announced record) that
// describe p, such that Parse(Labels(p), master) returns a Pod equal to p
// for every p that Parse returned.
//
// A primary pod's first link goes to the local_*/pair_* keys (its Netem to
// ratchet.netem) unless it has an MTU or an impairment of one end (those
// keys cannot say them); the other links go to ratchet.links. Only a
// non-primary pod's first expected link can be written (in the
// local_*/pair_* keys): Parse never returns more; of it, MTU and the
// impairments are written only as far as those keys say them exactly (its
// Netem when it has no impairment of one end), the rest is left out.
func Labels(p *Pod) map[string]string {
	if p == nil {
		return nil
	}
	m := map[string]string{
		KeyRatchet:   "true",
		KeyPodName:   p.Name,
		KeyNamespace: p.Namespace,
		KeyPrimary:   strconv.FormatBool(p.Primary),
	}
	if p.Namespace == "" {
		m[KeyNamespace] = DefaultNamespace
	}
	links := p.Links
	switch {
	case p.Primary && len(links) > 0 && pairKeysSay(links[0]):
		setPairLabels(m, links[0])
		links = links[1:]
	case !p.Primary && len(p.Expects) > 0:
		setPairLabels(m, p.Expects[0])
	}
	if len(links) > 0 {
		b, err := json.Marshal(links)
		if err != nil {
			panic(fmt.Sprintf("metadata: marshal links: %v", err)) // []Link always marshals
		}
		m[KeyLinks] = string(b)
	}
	setNonEmpty(m, KeyTargetPod, p.TargetPod)
	setNonEmpty(m, KeyTargetContainer, p.TargetContainer)
	setNonEmpty(m, KeyPublicIP, p.PublicIP)
	return m
}

// pairKeysSay reports whether the local_*/pair_* keys and ratchet.netem
// describe l completely.
func pairKeysSay(l Link) bool {
	return l.MTU == 0 && l.LocalNetem == nil && l.PeerNetem == nil
}

// setPairLabels writes l to the local_*/pair_* keys, and its Netem to
// ratchet.netem when that says the impairment of both ends exactly.
func setPairLabels(m map[string]string, l Link) {
	setNonEmpty(m, KeyPairName, l.Peer)
	setNonEmpty(m, KeyLocalIfName, l.IfName)
	setNonEmpty(m, KeyLocalIP, l.IP)
	setNonEmpty(m, KeyPairIfName, l.PeerIfName)
	setNonEmpty(m, KeyPairIP, l.PeerIP)
	if l.Netem != nil && l.LocalNetem == nil && l.PeerNetem == nil {
		m[KeyNetem] = marshalNetem(l.Netem)
	}
}

func setNonEmpty(m map[string]string, key, value string) {
	if value != "" {
		m[key] = value
	}
}

// ReadLabelFile reads a Docker label file (`docker run --label-file`), such
// as scripts/primary.label. See ParseLabelFile for the format.
func ReadLabelFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("label file: %w", err)
	}
	defer f.Close()
	labels, err := ParseLabelFile(f)
	if err != nil {
		return nil, fmt.Errorf("label file %s: %w", path, err)
	}
	return labels, nil
}

// ParseLabelFile parses a label file the way the docker CLI does: one
// `key=value` a line; leading whitespace is dropped; blank lines and lines
// starting with '#' are skipped; the value is kept as is (no trimming, no
// quotes) but for the '\r' of a CRLF line end; a line without '=' is
// ignored; a key with a space or tab, an empty key, a line that is not UTF-8
// or longer than 64 KiB is an error; a later key overrides an earlier one.
func ParseLabelFile(r io.Reader) (map[string]string, error) {
	labels := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		b := sc.Bytes()
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("line %d: not UTF-8", n)
		}
		if n == 1 {
			b = bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF"))
		}
		line := strings.TrimLeftFunc(string(b), unicode.IsSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if key == "" {
			return nil, fmt.Errorf("line %d: no key in %q", n, line)
		}
		if strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("line %d: key %q contains whitespace", n, key)
		}
		labels[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	return labels, nil
}
