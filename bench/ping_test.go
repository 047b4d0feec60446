package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// prober sends ICMP echo requests from inside a pod's netns on a raw
// socket opened there (a socket stays in the netns it was made in), so a
// test can time the first reply to within one probe interval without
// starting a ping process per try.
type prober struct {
	conn net.PacketConn
	id   uint16
	seq  uint16
}

// newProber opens a raw ICMP socket in the netns at path.
func newProber(path string) (*prober, error) {
	n, err := ns.GetNS(path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer n.Close()
	var conn net.PacketConn
	err = n.Do(func(ns.NetNS) error {
		var err error
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("icmp socket in %s: %w", path, err)
	}
	var id [2]byte
	_, _ = rand.Read(id[:])
	return &prober{conn: conn, id: binary.BigEndian.Uint16(id[:])}, nil
}

// Close closes the socket.
func (p *prober) Close() error { return p.conn.Close() }

// firstReply sends an echo request to dst every interval until one is
// answered (it returns when the reply arrived) or ctx ends.
func (p *prober) firstReply(ctx context.Context, dst string, interval time.Duration) (time.Time, error) {
	addr := &net.IPAddr{IP: net.ParseIP(dst)}
	if addr.IP == nil {
		return time.Time{}, fmt.Errorf("bad address %q", dst)
	}
	buf := make([]byte, 1500)
	first := p.seq + 1 // replies to earlier calls' requests do not count
	for ctx.Err() == nil {
		p.seq++
		if _, err := p.conn.WriteTo(echoRequest(p.id, p.seq), addr); err != nil {
			// No route or no neighbour yet: the link is not there. Wait
			// for the next try.
			sleepCtx(ctx, interval)
			continue
		}
		next := time.Now().Add(interval)
		for {
			_ = p.conn.SetReadDeadline(next)
			n, from, err := p.conn.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return time.Time{}, fmt.Errorf("read icmp: %w", err)
			}
			seq, ok := echoReply(buf[:n], p.id)
			if ok && seq-first <= p.seq-first && from.(*net.IPAddr).IP.Equal(addr.IP) {
				return time.Now(), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("no echo reply from %s: %w", dst, ctx.Err())
}

// echoRequest is an ICMP echo request with the given id and sequence.
func echoRequest(id, seq uint16) []byte {
	m := make([]byte, 16)
	m[0] = 8 // echo request, code 0
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], "ratchetb")
	binary.BigEndian.PutUint16(m[2:], checksum(m))
	return m
}

// echoReply returns the sequence number of an ICMP message (IP header
// stripped) if it is an echo reply with id.
func echoReply(m []byte, id uint16) (seq uint16, ok bool) {
	if len(m) < 8 || m[0] != 0 || m[1] != 0 || binary.BigEndian.Uint16(m[4:]) != id {
		return 0, false
	}
	return binary.BigEndian.Uint16(m[6:]), true
}

// checksum is the Internet checksum of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
