package ifname

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckFollowsTheKernelAndRefusesPercent(t *testing.T) {
	for _, name := range []string{"eth0", "in1", "a", strings.Repeat("x", MaxLen), "veth-9.x_y", "é", "net1@", "-"} {
		if err := Check(name); err != nil {
			t.Errorf("Check(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{
		"", ".", "..", strings.Repeat("x", MaxLen+1), "a/b", "a:b", "a b", "a\tb", "a\nb",
		"a\vb", "a\fb", "a\rb", "x%d", "%", "a\x00b", "a\x01", "a\x7f", "\u00a0", "à", // à is c3 a0
	} {
		err := Check(name)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, want ErrInvalid", name, err)
		}
		if Valid(name) {
			t.Errorf("Valid(%q) = true", name)
		}
	}
}
