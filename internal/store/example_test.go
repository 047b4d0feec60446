package store_test

import (
	"fmt"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// Both ends of a link compute the same key, whichever side declares it.
func ExampleLinkID() {
	k := store.Keys{Prefix: "/ratchet"}
	fromA := store.LinkID("primary-pod", "in1", "pair-pod", "in2")
	fromB := store.LinkID("pair-pod", "in2", "primary-pod", "in1")
	fmt.Println(fromA == fromB)
	fmt.Println(k.Link("default", fromA))
	fmt.Println(k.VNI(4097))
	// Output:
	// true
	// /ratchet/links/default/pair-pod.in2--primary-pod.in1
	// /ratchet/vni/4097
}
