package wiring

import (
	"errors"
	"testing"
)

// The kernel expands '%' in a new link's name (x%d becomes x0, x1, …), so a
// link wired under such a name could never be found, checked or removed.
func TestValidateNameRefusesNamesTheKernelWouldAlter(t *testing.T) {
	for _, name := range []string{"x%d", "%", "in1%", "a\u00a0", "a\x00b", "a\x01"} {
		if err := ValidateName(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalid", name, err)
		}
		ep := Endpoint{Netns: "/nonexistent/netns", Name: name}
		if err := ep.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Endpoint{Name: %q}.Validate() = %v, want ErrInvalid", name, err)
		}
	}
}
