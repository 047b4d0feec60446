package wiring_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// A veth pair between two pods, then the idempotent removal a CNI DEL does.
func ExampleVethPair() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := wiring.Endpoint{Netns: "/var/run/netns/pod-a", Name: "eth1", MTU: 9000,
		Addresses: []string{"192.0.2.1/24", "2001:db8::1/64"}}
	b := wiring.Endpoint{Netns: "/var/run/netns/pod-b", Name: "eth1", MTU: 9000,
		Addresses: []string{"192.0.2.2/24", "2001:db8::2/64"}}
	if err := wiring.VethPair(ctx, a, b); errors.Is(err, wiring.ErrExists) {
		fmt.Println("eth1 is taken:", err)
	}
	_ = wiring.Remove(ctx, a.Netns, a.Name) // removes b's end too
}

// One end of a cross-host wire; the peer host does the same towards us.
func ExampleVxlan() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep := wiring.Endpoint{Netns: "/var/run/netns/pod-a", Name: "eth2", Addresses: []string{"10.1.0.1/24"}}
	err := wiring.Vxlan(ctx, ep, wiring.VxlanOptions{VNI: 5001, Remote: net.ParseIP("198.51.100.2")})
	if errors.Is(err, wiring.ErrNoParent) {
		fmt.Println("no underlay towards the peer host:", err)
	}
	info, err := wiring.Lookup(ctx, ep.Netns, ep.Name)
	if err == nil && info.Matches(ep) == nil {
		fmt.Println("wired, MTU", info.MTU, "VNI", info.VNI)
	}
}
