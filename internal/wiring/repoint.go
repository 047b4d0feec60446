package wiring

import (
	"context"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Repoint points ratchet's vxlan end ifname of link owner, in the netns at
// netnsPath, at another remote host, in place: the interface keeps its
// name, addresses, MTU and VNI (a router in the pod sees no interface go
// away). The end's socket stays in the host netns. A missing interface is
// ErrNotFound, another owner's ErrNotOwned, a non-vxlan ErrInvalid.
func Repoint(ctx context.Context, netnsPath, ifname, owner string, remote net.IP) error {
	if err := ValidateName(ifname); err != nil {
		return fmt.Errorf("re-point %s: %w", ifname, err)
	}
	if remote == nil || remote.IsUnspecified() || remote.IsMulticast() {
		return fmt.Errorf("re-point %s to %v: %w", ifname, remote, ErrBadAddress)
	}
	c, err := openNS(ctx, netnsPath)
	if err != nil {
		return fmt.Errorf("re-point %s: %w", ifname, err)
	}
	defer c.Close()
	l, err := ownedLink(c, ifname, owner)
	if err != nil {
		return err
	}
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return fmt.Errorf("re-point %s in netns %s: a %s, not a vxlan: %w", ifname, netnsPath, l.Type(), ErrInvalid)
	}
	if vx.Group.Equal(remote) {
		return nil
	}
	if err := c.changeRemote(vx, remote); err != nil {
		return fmt.Errorf("re-point %s in netns %s to %s: %w", ifname, netnsPath, remote, err)
	}
	return nil
}

// changeRemote sends the kernel a vxlan changelink carrying only the VNI
// and the new remote, as `ip link set … type vxlan id N remote R` does:
// the netlink library's LinkModify resends every attribute (the parent's
// index among them, which means nothing in the pod's netns) and is
// refused.
func (c *nsConn) changeRemote(vx *netlink.Vxlan, remote net.IP) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(vx.Index)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("vxlan"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_VXLAN_ID, nl.Uint32Attr(uint32(vx.VxlanId)))
	if ip4 := remote.To4(); ip4 != nil {
		data.AddRtAttr(nl.IFLA_VXLAN_GROUP, []byte(ip4))
	} else {
		data.AddRtAttr(nl.IFLA_VXLAN_GROUP6, []byte(remote.To16()))
	}
	req.AddData(info)
	return c.ns.Do(func(ns.NetNS) error {
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
}
