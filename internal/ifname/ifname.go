// Package ifname holds the one rule for Linux network interface names that
// every part of ratchet applies (pod metadata, records, topology files, the
// netconf's host.interface and the wiring itself), so that a name accepted
// anywhere is one the kernel keeps exactly as given.
package ifname

import (
	"errors"
	"fmt"
)

// MaxLen is the longest interface name: IFNAMSIZ (16) minus the NUL.
const MaxLen = 15

// ErrInvalid is matched (errors.Is) by every error Check returns.
var ErrInvalid = errors.New("invalid interface name")

// Check returns nil when name is a valid interface name, else an error
// matching ErrInvalid that says why (see Reason).
func Check(name string) error {
	if r := Reason(name); r != "" {
		return fmt.Errorf("%s: %w", r, ErrInvalid)
	}
	return nil
}

// Reason says why name is not a valid interface name (without quoting it),
// or returns "" for a valid one.
//
// The rule is the kernel's dev_valid_name (net/core/dev.c): not empty, at
// most 15 bytes, not "." or "..", no '/', ':' or byte the kernel's isspace
// accepts (space, \t \n \v \f \r and 0xA0, the Latin-1 no-break space,
// which is also the second byte of many UTF-8 characters). Reason also
// refuses what the kernel accepts but does not keep as given: '%', which
// the kernel expands to a free number ("x%d" becomes x0, x1, …), so that
// the interface would never be found under its name again; and control
// characters, NUL (which ends the name early) among them.
func Reason(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > MaxLen:
		return fmt.Sprintf("longer than %d bytes", MaxLen)
	case name == "." || name == "..":
		return `"." and ".." are not valid`
	}
	for i := 0; i < len(name); i++ {
		if what := badByte(name[i]); what != "" {
			return "contains " + what
		}
	}
	return ""
}

// badByte names the kind of c when c may not be in an interface name.
func badByte(c byte) string {
	switch {
	case c == '/' || c == ':':
		return fmt.Sprintf("'%c'", c)
	case c == '%':
		return "'%' (the kernel expands it to a number)"
	case c == ' ' || c >= '\t' && c <= '\r' || c == 0xA0:
		return "whitespace"
	case c < ' ' || c == 0x7F:
		return "a control character"
	}
	return ""
}

// Valid reports whether name is a valid interface name.
func Valid(name string) bool { return Reason(name) == "" }
