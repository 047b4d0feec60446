package testenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// PingResult is the summary of one ping run.
type PingResult struct {
	Sent, Received, Duplicates int
	// MinRTT in milliseconds; 0 when nothing came back.
	MinRTT float64
	Out    string
}

var (
	pingCountsRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?`)
	pingRTTRE    = regexp.MustCompile(`rtt min/avg/max/mdev = ([0-9.]+)/`)
)

// ParsePing reads ping's summary from its output (a run without replies
// is a result, not an error).
func ParsePing(out string) (PingResult, error) {
	r := PingResult{Out: out}
	m := pingCountsRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no ping summary in output:\n%s", out)
	}
	r.Sent, _ = strconv.Atoi(m[1])
	r.Received, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		r.Duplicates, _ = strconv.Atoi(m[3])
	}
	if m := pingRTTRE.FindStringSubmatch(out); m != nil {
		r.MinRTT, _ = strconv.ParseFloat(m[1], 64)
	}
	return r, nil
}

// LossFraction is the share of echo requests that got no reply.
func (r PingResult) LossFraction() float64 {
	if r.Sent == 0 {
		return 1
	}
	return 1 - float64(r.Received)/float64(r.Sent)
}

// String makes failures readable.
func (r PingResult) String() string {
	return fmt.Sprintf("%d sent, %d received, %d duplicates, min RTT %.3f ms", r.Sent, r.Received, r.Duplicates, r.MinRTT)
}

// ThroughputWarmUp is how long a Throughput transfer runs before it counts
// (slow start, the first drops at a shaper).
const ThroughputWarmUp = time.Second

// Throughput measures a TCP transfer from the netns at from to addr (an
// IPv4 address in the netns at to): after ThroughputWarmUp, the bits per
// second the receiver counts over d.
func Throughput(from, to, addr string, d time.Duration) (float64, error) {
	var l net.Listener
	err := ns.WithNetNSPath(to, func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", net.JoinHostPort(addr, "0"))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("listen in %s: %w", to, err)
	}
	defer l.Close()
	type counted struct {
		n   int64
		err error
	}
	got := make(chan counted, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- counted{err: err}
			return
		}
		defer c.Close()
		if _, err := readFor(c, ThroughputWarmUp); err != nil {
			got <- counted{err: err}
			return
		}
		n, err := readFor(c, d)
		got <- counted{n: n, err: err}
	}()
	var c net.Conn
	err = ns.WithNetNSPath(from, func(ns.NetNS) error {
		var err error
		dialer := net.Dialer{Timeout: 5 * time.Second}
		c, err = dialer.Dial("tcp4", l.Addr().String())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("dial from %s: %w", from, err)
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			return 0, fmt.Errorf("receive: %w", r.err)
		}
		return float64(r.n) * 8 / d.Seconds(), nil
	case <-time.After(ThroughputWarmUp + d + 10*time.Second):
		return 0, errors.New("the receiver did not finish")
	}
}

// readFor reads from c for d and returns how many bytes came.
func readFor(c net.Conn, d time.Duration) (int64, error) {
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = nil
	} else if err == nil {
		err = io.ErrUnexpectedEOF // the sender never stops on its own
	}
	return n, err
}
