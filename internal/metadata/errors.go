package metadata

import (
	"errors"
	"fmt"
)

// ErrNoMetadata is returned by a Source that holds nothing for the pod: no
// such container, no announced record, or no ratchet key in what it found.
var ErrNoMetadata = errors.New("no ratchet metadata")

// ErrSourceUnavailable is wrapped by the errors of a Source that could not be
// asked at all (daemon or store unreachable, deadline passed). Callers branch
// on it with errors.Is: the pod may well be a ratchet pod, it is unknown.
var ErrSourceUnavailable = errors.New("metadata source unavailable")

// maxValueInMessage bounds how much of an offending value Error prints.
const maxValueInMessage = 80

// Error is a validation error of one metadata key. Key names the label, or
// the entry and field of ratchet.links ("ratchet.links[2].ifname"), down to
// an impairment's field ("ratchet.links[0].netem.loss", "ratchet.netem.rate");
// Value is the offending value ("" for a missing key); Reason says what is
// wrong.
type Error struct {
	Key    string
	Value  string
	Reason string
}

// Error formats the error as `key: "value": reason` (the value is left out
// when empty and shortened when long).
func (e *Error) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Key, e.Reason)
	}
	return fmt.Sprintf("%s: %q: %s", e.Key, Clip(e.Value, maxValueInMessage), e.Reason)
}

func invalid(key, value, reason string) *Error {
	return &Error{Key: key, Value: value, Reason: reason}
}

// unavailableError carries a source's "unreachable" message and matches
// ErrSourceUnavailable.
type unavailableError struct {
	what string
	err  error
}

// Unavailable returns an error saying "<what> unreachable: <err>" that
// matches ErrSourceUnavailable with errors.Is and unwraps to err. Sources use
// it when they cannot be asked, e.g. Unavailable("docker at "+host, err).
func Unavailable(what string, err error) error {
	return &unavailableError{what: what, err: err}
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("%s unreachable: %v", e.what, e.err)
}

func (e *unavailableError) Unwrap() error { return e.err }

func (e *unavailableError) Is(target error) bool { return target == ErrSourceUnavailable }
