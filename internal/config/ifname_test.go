package config

import (
	"errors"
	"testing"
)

// The netconf's host.interface follows the one interface-name rule
// (internal/ifname): '%' is expanded by the kernel, 0xA0 is a kernel space.
func TestHostInterfaceRefusesNamesTheKernelWouldAlter(t *testing.T) {
	for _, name := range []string{"ul%d", "%", "ul\u00a0", "ul\\u000b"} {
		conf := `{"cniVersion":"1.0.0","name":"n","type":"ratchet","delegates":[{"type":"bridge"}],"host":{"interface":"` + name + `"}}`
		_, err := Load([]byte(conf))
		var ce *Error
		if !errors.As(err, &ce) || ce.Field != "host.interface" {
			t.Errorf("host.interface %q: err = %v, want a config error naming host.interface", name, err)
		}
	}
}
