// Package config loads and validates ratchet's network configuration (the
// netconf of DESIGN.md): it applies defaults, maps the first ratchet's legacy
// fields onto the current ones, and returns errors that name the field at
// fault. It also prepares the delegates' own netconfs.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/etcdcfg"
)

// Defaults applied by Load.
const (
	DefaultDockerHost  = "unix:///var/run/docker.sock"
	DefaultCNIDir      = "/var/lib/cni/ratchet"
	DefaultLogLevel    = "info"
	DefaultPairTimeout = 120 * time.Second
	DefaultVxlanPort   = 4789
	// DefaultAgentSocket is where the node agent listens.
	DefaultAgentSocket = "/run/ratchet/ratchetd.sock"
)

// MaxNetconfLen bounds a netconf, in bytes. The plugin hands its netconf
// to the agent with every call, in a request the agent caps at 4 MiB, and
// copies each delegate's netconf into the attachment's cache.
const MaxNetconfLen = 1 << 20

// Metadata source names accepted in "metadata".
const (
	SourceDocker     = "docker"
	SourceKubernetes = "kubernetes"
	SourceEtcd       = "etcd"
)

// NetConf is ratchet's network configuration.
type NetConf struct {
	types.NetConf

	// Delegates are the plugins ratchet runs, as raw netconfs.
	Delegates []map[string]any `json:"delegates"`
	// Etcd is where pairing state lives.
	Etcd Etcd `json:"etcd"`
	// Metadata lists where a pod's ratchet metadata is looked up, in order.
	Metadata []string `json:"metadata"`
	// Docker is the daemon the docker metadata source asks.
	Docker Docker `json:"docker"`
	// Kubernetes is the API the agent's watch of its node's pods asks
	// (the kubernetes metadata source).
	Kubernetes Kubernetes `json:"kubernetes"`
	// Agent is how the plugin reaches the node agent.
	Agent Agent `json:"agent"`
	// Host identifies this node for pairing.
	Host Host `json:"host"`
	// CNIDir holds per-container caches.
	CNIDir string `json:"cniDir"`
	// LogFile receives the plugin's logs; empty means no log.
	LogFile string `json:"logFile"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"logLevel"`
	// PairTimeout bounds how long a pod waits for its peers.
	PairTimeout Duration `json:"pairTimeout"`
	// Vxlan configures cross-host links.
	Vxlan Vxlan `json:"vxlan"`
	// RuntimeConfig carries capability arguments from the runtime; they are
	// passed on to the delegates that declare the capability.
	RuntimeConfig map[string]any `json:"runtimeConfig,omitempty"`

	// Legacy fields of the first ratchet.
	LegacyEtcdHost        string          `json:"etcd_host,omitempty"`
	LegacyEtcdPort        json.RawMessage `json:"etcd_port,omitempty"`
	LegacyParentInterface string          `json:"parent_interface,omitempty"`
	LegacyParentAddress   string          `json:"parent_address,omitempty"`

	delegates []Delegate
}

// Etcd is the "etcd" section.
type Etcd struct {
	Endpoints []string `json:"endpoints"`
	API       string   `json:"api"`
	Prefix    string   `json:"prefix"`
	Timeout   Duration `json:"timeout"`
	TLS       TLS      `json:"tls"`
	Username  string   `json:"username"`
	Password  string   `json:"password"`
}

// StoreConfig converts the section into the store's connection settings.
func (e Etcd) StoreConfig() etcdcfg.Config {
	return etcdcfg.Config{
		Endpoints: e.Endpoints, API: e.API, Prefix: e.Prefix, Timeout: e.Timeout.D(),
		CA: e.TLS.CA, Cert: e.TLS.Cert, Key: e.TLS.Key, Username: e.Username, Password: e.Password,
	}
}

// TLS names the PEM files of etcd client TLS.
type TLS struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// Docker is the "docker" section.
type Docker struct {
	Host string `json:"host"`
}

// Kubernetes is the "kubernetes" section.
type Kubernetes struct {
	// Kubeconfig is the kubeconfig file the agent reads its API server
	// and credentials from; empty means the in-cluster credentials.
	Kubeconfig string `json:"kubeconfig"`
}

// Agent is the "agent" section.
type Agent struct {
	// Socket is the agent's unix socket.
	Socket string `json:"socket"`
}

// Host is the "host" section: this node's identity and vxlan underlay.
type Host struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Interface string `json:"interface"`
}

// Vxlan is the "vxlan" section.
type Vxlan struct {
	Port int `json:"port"`
	MTU  int `json:"mtu"`
}

// Error is a configuration error naming the field at fault.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, a ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Load parses and validates a netconf, applying defaults and legacy aliases.
func Load(data []byte) (*NetConf, error) {
	if len(data) > MaxNetconfLen {
		return nil, fieldErr("netconf", "%d bytes, more than the limit of %d", len(data), MaxNetconfLen)
	}
	conf := &NetConf{}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(conf); err != nil {
		return nil, decodeError(err)
	}
	if conf.Type == "" {
		conf.Type = "ratchet"
	}
	if err := conf.applyLegacy(); err != nil {
		return nil, err
	}
	conf.applyDefaults()
	if err := conf.validate(); err != nil {
		return nil, err
	}
	delegates, err := buildDelegates(conf)
	if err != nil {
		return nil, err
	}
	conf.delegates = delegates
	return conf, nil
}

// decodeError names the field a JSON type error is about.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fieldErr(te.Field, "expected %s, got JSON %s", te.Type, te.Value)
	}
	return fieldErr("netconf", "malformed JSON: %v", err)
}

func (c *NetConf) applyLegacy() error {
	if c.LegacyEtcdHost != "" || len(c.LegacyEtcdPort) > 0 {
		if len(c.Etcd.Endpoints) > 0 {
			return fieldErr("etcd_host", "legacy etcd_host/etcd_port conflict with etcd.endpoints; use only etcd.endpoints")
		}
		port, err := legacyPort(c.LegacyEtcdPort)
		if err != nil {
			return err
		}
		host := c.LegacyEtcdHost
		if host == "" {
			host = "127.0.0.1"
		}
		c.Etcd.Endpoints = []string{"http://" + joinHostPort(host, port)}
	}
	if c.LegacyParentInterface != "" {
		if c.Host.Interface != "" && c.Host.Interface != c.LegacyParentInterface {
			return fieldErr("parent_interface", "conflicts with host.interface %q", c.Host.Interface)
		}
		c.Host.Interface = c.LegacyParentInterface
	}
	if c.LegacyParentAddress != "" {
		if c.Host.Address != "" && c.Host.Address != c.LegacyParentAddress {
			return fieldErr("parent_address", "conflicts with host.address %q", c.Host.Address)
		}
		c.Host.Address = c.LegacyParentAddress
	}
	return nil
}

func (c *NetConf) applyDefaults() {
	d := etcdcfg.Config{Endpoints: c.Etcd.Endpoints, API: c.Etcd.API, Prefix: c.Etcd.Prefix}.WithDefaults()
	c.Etcd.Endpoints, c.Etcd.API, c.Etcd.Prefix = d.Endpoints, d.API, d.Prefix
	if c.Metadata == nil {
		c.Metadata = []string{SourceDocker, SourceKubernetes, SourceEtcd}
	}
	if c.Docker.Host == "" {
		c.Docker.Host = DefaultDockerHost
	}
	if c.Host.Name == "" {
		if h, err := os.Hostname(); err == nil {
			c.Host.Name = h
		}
	}
	if c.CNIDir == "" {
		c.CNIDir = DefaultCNIDir
	}
	if c.Agent.Socket == "" {
		c.Agent.Socket = DefaultAgentSocket
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.Vxlan.Port == 0 {
		c.Vxlan.Port = DefaultVxlanPort
	}
}

// MasterIndex is the index in Delegates of the master delegate.
func (c *NetConf) MasterIndex() int {
	for i, d := range c.delegates {
		if d.Master {
			return i
		}
	}
	return 0
}

// PrepDelegates returns the delegates with their netconfs ready to run for
// the runtime's interface name: the master gets masterIfName, the others
// net1, net2, … in order.
func (c *NetConf) PrepDelegates(masterIfName string) []Delegate {
	return NameDelegates(c.delegates, masterIfName)
}

// NameDelegates sets each delegate's IfName for the runtime's interface
// name: the master gets masterIfName, the others net1, net2, … in order,
// skipping masterIfName if it is one of those. It returns a copy.
func NameDelegates(ds []Delegate, masterIfName string) []Delegate {
	out := make([]Delegate, len(ds))
	n := 0
	for i, d := range ds {
		if d.Master {
			d.IfName = masterIfName
		} else {
			n++
			if fmt.Sprintf("net%d", n) == masterIfName {
				n++
			}
			d.IfName = fmt.Sprintf("net%d", n)
		}
		out[i] = d
	}
	return out
}
