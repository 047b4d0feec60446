package wiring

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// A vxlan MTU above the parent's MTU minus the overhead is refused with
// ErrMTU, naming mtu, the value and the maximum, and nothing is created.
func TestVxlanMTUAboveParentIsErrMTUAndCreatesNothing(t *testing.T) {
	u := newUnderlay(t)
	for _, mtu := range []int{1451, 9000} {
		ep := Endpoint{Netns: u.podA.Path(), Name: "vxm", MTU: mtu, Addresses: []string{"10.12.0.1/24"}}
		err := Vxlan(testCtx(t), ep, VxlanOptions{VNI: 77, Remote: net.ParseIP("198.51.100.2"), HostNetns: u.hostA.Path()})
		if !errors.Is(err, ErrMTU) || !errors.Is(err, ErrInvalid) {
			t.Fatalf("MTU %d: err = %v, want ErrMTU", mtu, err)
		}
		for _, want := range []string{"mtu", "1450"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("MTU %d: error %q does not say %q", mtu, err, want)
			}
		}
		requireLinks(t, u.podA)
		requireLinks(t, u.hostA, "ul0")
	}
}
