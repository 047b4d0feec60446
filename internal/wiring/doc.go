// Package wiring builds and removes the links of ratchet's point-to-point
// wires: veth pairs between two network namespaces and vxlan ends whose UDP
// socket lives in the host netns while the device sits in a pod netns.
//
// It speaks netlink only (no `ip` commands), knows nothing of CNI or etcd,
// and is safe for concurrent use from many goroutines and processes: every
// netlink operation goes through a handle bound to the netns it acts on,
// links appear under random temporary names and get their final name only
// once addressed, and a failure part way removes whatever was made.
package wiring
