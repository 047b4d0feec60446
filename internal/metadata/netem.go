package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/netem"
)

// netemKeys lists the keys of an impairment object, for error messages.
const netemKeys = "delay, jitter, loss, rate, corrupt, duplicate, reorder"

// linkEntry is an entry of ratchet.links as written. Its impairments
// shadow Link's and stay raw, so that each is decoded strictly on its own
// and its errors name it ("ratchet.links[0].netem.loss").
type linkEntry struct {
	Link
	Netem      json.RawMessage `json:"netem"`
	LocalNetem json.RawMessage `json:"local_netem"`
	PeerNetem  json.RawMessage `json:"peer_netem"`
}

// netems decodes the entry's impairments into l; prefix names the entry.
func (e *linkEntry) netems(prefix string, l *Link) error {
	for _, n := range []struct {
		name string
		raw  json.RawMessage
		dst  **netem.Spec
	}{
		{"netem", e.Netem, &l.Netem},
		{"local_netem", e.LocalNetem, &l.LocalNetem},
		{"peer_netem", e.PeerNetem, &l.PeerNetem},
	} {
		s, err := decodeNetem(prefix+"."+n.name, n.raw)
		if err != nil {
			return err
		}
		*n.dst = s
	}
	return nil
}

// decodeNetem decodes one impairment object strictly (unknown keys and
// trailing data are errors) and validates it with netem.Spec.Validate. key
// names the object in errors ("ratchet.netem", "ratchet.links[0].netem");
// a bad field is named below it ("ratchet.netem.loss"). Nothing, null, {}
// and an object of empty strings all mean no impairment: nil.
func decodeNetem(key string, raw []byte) (*netem.Spec, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var s *netem.Spec
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, invalid(key+"."+te.Field, "", fmt.Sprintf("a JSON %s, want a string", te.Value))
		}
		return nil, invalid(key, string(raw), fmt.Sprintf("not an impairment (a JSON object of %s): %v", netemKeys, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid(key, string(raw), "not an impairment: data after the JSON object")
	}
	if s == nil || s.IsZero() {
		return nil, nil
	}
	if err := s.Validate(); err != nil {
		return nil, netemError(key, s, err)
	}
	return s, nil
}

// netemError turns the first error of s.Validate into an *Error naming the
// field under key. netem's errors read `<ErrInvalid>: netem.<field>:
// "<value>": <reason>`; anything else is kept whole, naming key.
func netemError(key string, s *netem.Spec, err error) *Error {
	first := err
	if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
		first = j.Unwrap()[0]
	}
	msg := first.Error()
	rest, ok := strings.CutPrefix(msg, netem.ErrInvalid.Error()+": netem.")
	if !ok {
		return invalid(key, "", msg)
	}
	field, rest, ok := strings.Cut(rest, ": ")
	if !ok {
		return invalid(key, "", msg)
	}
	if q, err := strconv.QuotedPrefix(rest); err == nil {
		rest = strings.TrimPrefix(rest[len(q):], ": ")
	}
	return invalid(key+"."+field, specField(s, field), rest)
}

// specField returns the value of the field of s named as in JSON.
func specField(s *netem.Spec, field string) string {
	switch field {
	case "delay":
		return s.Delay
	case "jitter":
		return s.Jitter
	case "loss":
		return s.Loss
	case "rate":
		return s.Rate
	case "corrupt":
		return s.Corrupt
	case "duplicate":
		return s.Duplicate
	case "reorder":
		return s.Reorder
	}
	return ""
}

// marshalNetem writes an impairment as ratchet.netem holds it.
func marshalNetem(s *netem.Spec) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("metadata: marshal netem: %v", err)) // a struct of strings always marshals
	}
	return string(b)
}
