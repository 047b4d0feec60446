package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ratchet-cni/ratchet/internal/etcdcfg"
	"github.com/ratchet-cni/ratchet/internal/ifname"
)

// SupportedVersions are the CNI spec versions ratchet speaks.
var SupportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

func (c *NetConf) validate() error {
	if c.CNIVersion == "" {
		return fieldErr("cniVersion", "missing (supported: %s)", strings.Join(SupportedVersions, ", "))
	}
	if !supported(c.CNIVersion) {
		return fieldErr("cniVersion", "%q is not supported (supported: %s)", c.CNIVersion, strings.Join(SupportedVersions, ", "))
	}
	if c.Name == "" {
		return fieldErr("name", "missing network name")
	}
	checks := []func() error{c.validateEtcd, c.validateMetadata, c.validateHost, c.validateMisc}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func supported(v string) bool {
	for _, s := range SupportedVersions {
		if s == v {
			return true
		}
	}
	return false
}

func (c *NetConf) validateEtcd() error {
	if err := c.Etcd.Timeout.parse("etcd.timeout", etcdcfg.DefaultTimeout); err != nil {
		return err
	}
	var fe *etcdcfg.FieldError
	if err := c.Etcd.StoreConfig().Validate(); errors.As(err, &fe) {
		return fieldErr(fe.Name(), "%s", fe.Message())
	}
	return nil
}

func (c *NetConf) validateMetadata() error {
	seen := map[string]bool{}
	for i, m := range c.Metadata {
		field := fmt.Sprintf("metadata[%d]", i)
		if m != SourceDocker && m != SourceKubernetes && m != SourceEtcd {
			return fieldErr(field, "%q is not %q, %q or %q", m, SourceDocker, SourceKubernetes, SourceEtcd)
		}
		if seen[m] {
			return fieldErr(field, "%q listed twice", m)
		}
		seen[m] = true
	}
	if seen[SourceDocker] {
		u, err := url.Parse(c.Docker.Host)
		if err != nil || u.Scheme == "" {
			return fieldErr("docker.host", "%q is not a URL like unix:///var/run/docker.sock", c.Docker.Host)
		}
	}
	if k := c.Kubernetes.Kubeconfig; k != "" && !strings.HasPrefix(k, "/") {
		return fieldErr("kubernetes.kubeconfig", "%q must be an absolute path (empty: the in-cluster credentials)", k)
	}
	return nil
}

func (c *NetConf) validateHost() error {
	if c.Host.Name == "" {
		return fieldErr("host.name", "missing and the hostname is unknown")
	}
	if c.Host.Address != "" && net.ParseIP(c.Host.Address) == nil {
		return fieldErr("host.address", "%q is not an IP address", c.Host.Address)
	}
	if c.Host.Interface != "" {
		if reason := ifname.Reason(c.Host.Interface); reason != "" {
			return fieldErr("host.interface", "%q is not an interface name: %s", c.Host.Interface, reason)
		}
	}
	return nil
}

func (c *NetConf) validateMisc() error {
	if !strings.HasPrefix(c.CNIDir, "/") {
		return fieldErr("cniDir", "%q must be an absolute path", c.CNIDir)
	}
	if !strings.HasPrefix(c.Agent.Socket, "/") || len(c.Agent.Socket) > 107 {
		return fieldErr("agent.socket", "%q must be an absolute path of at most 107 bytes", c.Agent.Socket)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("logLevel", "%q is not debug, info, warn or error", c.LogLevel)
	}
	if err := c.PairTimeout.parse("pairTimeout", DefaultPairTimeout); err != nil {
		return err
	}
	if c.Vxlan.Port < 1 || c.Vxlan.Port > 65535 {
		return fieldErr("vxlan.port", "%d is not a UDP port", c.Vxlan.Port)
	}
	if c.Vxlan.MTU != 0 && (c.Vxlan.MTU < 68 || c.Vxlan.MTU > 65535) {
		return fieldErr("vxlan.mtu", "%d is outside 68..65535 (0 means parent MTU - 50)", c.Vxlan.MTU)
	}
	return nil
}

func legacyPort(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "2379", nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		if n < 1 || n > 65535 {
			return "", fieldErr("etcd_port", "%d is not a TCP port", n)
		}
		return strconv.Itoa(n), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fieldErr("etcd_port", "must be a number or a string, got %s", raw)
	}
	if p, err := strconv.Atoi(s); err != nil || p < 1 || p > 65535 {
		return "", fieldErr("etcd_port", "%q is not a TCP port", s)
	}
	return s, nil
}

func joinHostPort(host, port string) string {
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// Duration is a duration written in JSON as a Go duration string ("2s").
// Decoding keeps the raw text; validation parses it so that the error can
// name the field.
type Duration struct {
	d   time.Duration
	raw string
	set bool
}

// UnmarshalJSON keeps the raw value for validation.
func (d *Duration) UnmarshalJSON(b []byte) error {
	d.set = true
	if err := json.Unmarshal(b, &d.raw); err != nil {
		d.raw = string(b)
	}
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.d.String()) }

// String prints the duration.
func (d Duration) String() string { return d.d.String() }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return d.d }

// parse validates the raw text, or applies def when the field was absent.
func (d *Duration) parse(field string, def time.Duration) error {
	if !d.set {
		d.d = def
		return nil
	}
	v, err := time.ParseDuration(d.raw)
	if err != nil || v <= 0 {
		return fieldErr(field, "%q is not a positive duration like \"2s\"", d.raw)
	}
	d.d = v
	return nil
}
