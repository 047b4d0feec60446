package metadata

import (
	"fmt"
	"unicode/utf8"
)

// Size limits of the metadata Parse accepts, so that a pod's record always
// fits in one etcd request and in a log line. Names are bounded by their
// own rules (DNS labels: MaxDNSLabelLen; interface names: MaxIfNameLen) and
// addresses by their syntax.
//
// Keys under "ratchet." that Parse does not know are ignored whatever
// their size: nothing copies them (Labels writes only the known keys), so
// they cannot reach a record, and a newer ratchet's keys on a pod do not
// break an older one.
const (
	// MaxKeptLen bounds each kept key (ratchet.target_pod,
	// ratchet.target_container, ratchet.public_ip), in bytes.
	MaxKeptLen = 256
	// MaxLinks bounds the entries of ratchet.links (a lab's widest pod,
	// with room: the benchmarks join two pods by 1,500 links).
	MaxLinks = 2048
	// MaxLinksLen bounds the value of ratchet.links, in bytes (512 KiB: a
	// pod record with that many links stays well under etcd's 1.5 MiB
	// request limit).
	MaxLinksLen = 512 << 10
	// MaxNetemLen bounds the value of ratchet.netem, in bytes (a full
	// impairment with every field at netem.MaxFieldLen takes about 340).
	// An impairment inside ratchet.links is bounded by MaxLinksLen and
	// its fields by netem.MaxFieldLen.
	MaxNetemLen = 1 << 10
)

// checkSizes rejects a kept key, ratchet.links or ratchet.netem over its
// limit, naming the key; it runs before anything is decoded.
func checkSizes(labels map[string]string) error {
	for _, k := range []string{KeyTargetPod, KeyTargetContainer, KeyPublicIP} {
		if v := labels[k]; len(v) > MaxKeptLen {
			return invalid(k, v, fmt.Sprintf("%d bytes, more than the limit of %d", len(v), MaxKeptLen))
		}
	}
	if v := labels[KeyLinks]; len(v) > MaxLinksLen {
		return invalid(KeyLinks, v, fmt.Sprintf("%d bytes, more than the limit of %d", len(v), MaxLinksLen))
	}
	if v := labels[KeyNetem]; len(v) > MaxNetemLen {
		return invalid(KeyNetem, v, fmt.Sprintf("%d bytes, more than the limit of %d", len(v), MaxNetemLen))
	}
	return nil
}

// Clip shortens s to at most n bytes for an error message, cutting on a
// UTF-8 character boundary and marking the cut with "...".
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
