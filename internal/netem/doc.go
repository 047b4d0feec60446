// Package netem is the link impairment a user declares (delay, jitter,
// loss, rate, corruption, duplication, reordering): the Spec written in
// ratchet.links "netem", topology files and link records, its units, its
// validation and its parsed values. It is pure data; package impair
// applies a Spec to an interface.
package netem
