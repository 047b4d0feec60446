package wiring

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Sentinel errors. Returned errors wrap them with context naming the
// interface and netns; test for them with errors.Is.
var (
	// ErrInvalid marks input rejected before anything was created: a bad
	// interface name, MTU, VNI, port or netns path.
	ErrInvalid = errors.New("invalid wiring input")
	// ErrBadAddress marks an address that is not a usable CIDR. It also
	// matches ErrInvalid.
	ErrBadAddress = fmt.Errorf("%w: bad address", ErrInvalid)
	// ErrMTU marks a requested vxlan MTU above what the parent device
	// carries (its MTU minus the encapsulation overhead). It also matches
	// ErrInvalid; the message names "mtu", the value and the maximum.
	ErrMTU = fmt.Errorf("%w: mtu above what the vxlan parent carries", ErrInvalid)
	// ErrExists means the interface name is already taken in the target netns.
	ErrExists = errors.New("interface name already exists")
	// ErrNetnsGone means the network namespace path does not exist (any more).
	ErrNetnsGone = errors.New("network namespace does not exist")
	// ErrNoParent means the vxlan parent (underlay) device is missing, or no
	// route leads to the remote.
	ErrNoParent = errors.New("vxlan parent device not found")
	// ErrVNIInUse means another vxlan device in the host netns already uses
	// the VNI on the same UDP port.
	ErrVNIInUse = errors.New("vxlan VNI already in use in host netns")
	// ErrNotFound means the link does not exist. Lookup in a netns that is
	// gone returns an error matching both ErrNotFound and ErrNetnsGone.
	ErrNotFound = errors.New("link not found")
	// ErrNotOwned means an interface exists under the name but ratchet did
	// not create it for this owner: it is someone else's and is left alone.
	ErrNotOwned = errors.New("interface is not ratchet's to remove")
)

// isNotExistNS reports whether err from ns.GetNS says the path is missing.
func isNotExistNS(err error) bool {
	var e ns.NSPathNotExistErr
	return errors.As(err, &e)
}

// isLinkNotFound reports whether a netlink error means "no such link".
func isLinkNotFound(err error) bool {
	var e netlink.LinkNotFoundError
	return errors.As(err, &e) || errors.Is(err, unix.ENODEV)
}

// isExist reports whether a netlink error is EEXIST.
func isExist(err error) bool {
	return errors.Is(err, unix.EEXIST)
}
