// Package etcdflag binds the etcd connection settings of ratchet's
// command-line tools (announcer, ratchetctl) to flags, ETCD_* environment
// variables and a ratchet netconf, and turns them into a etcdcfg.Config.
//
// Precedence, highest first: a flag given on the command line, the netconf
// named by --netconf, the environment, the defaults of the netconf.
package etcdflag

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/etcdcfg"
)

// Error is a bad etcd setting; Field names the flag and its variable.
type Error struct {
	Field  string
	Value  string
	Reason string
}

// Error formats the error as `field: "value": reason`.
func (e *Error) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Reason
	}
	return fmt.Sprintf("%s: %q: %s", e.Field, e.Value, e.Reason)
}

// Flags holds the etcd settings as given on the command line. Register it on
// one or more flag sets, parse them, then call Config.
type Flags struct {
	values  [nSettings]string
	set     [nSettings]bool
	Netconf string
	// Host is the netconf's host.name, set by Config when --netconf is given.
	Host string
}

// The settings, in the order of settings.
const (
	endpoints = iota
	api
	prefix
	timeout
	ca
	cert
	key
	username
	password
	nSettings
)

// setting describes one etcd flag and its environment variable.
var settings = [nSettings]struct{ flag, env, usage string }{
	endpoints: {"etcd-endpoints", "ETCD_ENDPOINTS", "comma-separated etcd client `URLs` (default " + etcdcfg.DefaultEndpoint + ")"},
	api:       {"etcd-api", "ETCD_API", "etcd `API`, v2 or v3 (default " + etcdcfg.DefaultAPI + ")"},
	prefix:    {"etcd-prefix", "ETCD_PREFIX", "`directory` of ratchet's keys (default " + etcdcfg.DefaultPrefix + ")"},
	timeout:   {"etcd-timeout", "ETCD_TIMEOUT", "per-request `timeout`, a duration or seconds (default " + etcdcfg.DefaultTimeout.String() + ")"},
	ca:        {"etcd-ca", "ETCD_CA", "PEM `file` of the CA that signed etcd's certificate"},
	cert:      {"etcd-cert", "ETCD_CERT", "PEM client certificate `file` (with --etcd-key)"},
	key:       {"etcd-key", "ETCD_KEY", "PEM client key `file` (with --etcd-cert)"},
	username:  {"etcd-username", "ETCD_USERNAME", "etcd `user` (with --etcd-password)"},
	password:  {"etcd-password", "ETCD_PASSWORD", "etcd `password`"},
}

// Register adds the etcd flags and --netconf to fs. The same Flags may be
// registered on several flag sets (global and sub-command flags).
func (f *Flags) Register(fs *flag.FlagSet) {
	for i, s := range settings {
		fs.Var(&value{s: &f.values[i], set: &f.set[i]}, s.flag, s.usage+" [$"+s.env+"]")
	}
	fs.Var(&value{s: &f.Netconf, set: new(bool)}, "netconf",
		"take the etcd settings (and host.name) from this ratchet netconf `file`; flags still win")
}

// value is a string flag that remembers it was set.
type value struct {
	s   *string
	set *bool
}

// String returns the value (flag.Value).
func (v *value) String() string {
	if v == nil || v.s == nil {
		return ""
	}
	return *v.s
}

// Set stores the value and remembers it was given (flag.Value).
func (v *value) Set(s string) error {
	*v.s, *v.set = s, true
	return nil
}

// field names a setting in messages: "--etcd-api/ETCD_API".
func field(i int) string { return "--" + settings[i].flag + "/" + settings[i].env }

// Config resolves the settings into a etcdcfg.Config. getenv reads the
// environment (os.Getenv; nil means none).
func (f *Flags) Config(getenv func(string) string) (etcdcfg.Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var raw [nSettings]string
	for i, s := range settings {
		raw[i] = getenv(s.env)
	}
	if f.Netconf != "" {
		nc, host, err := fromNetconf(f.Netconf)
		if err != nil {
			return etcdcfg.Config{}, err
		}
		raw, f.Host = nc, host
	}
	for i := range settings {
		if f.set[i] {
			raw[i] = f.values[i]
		}
	}
	return build(raw)
}

// fromNetconf reads the etcd section of a netconf as raw settings.
func fromNetconf(path string) ([nSettings]string, string, error) {
	var raw [nSettings]string
	data, err := os.ReadFile(path)
	if err != nil {
		return raw, "", &Error{Field: "--netconf", Value: path, Reason: err.Error()}
	}
	conf, err := config.Load(data)
	if err != nil {
		return raw, "", &Error{Field: "--netconf", Value: path, Reason: err.Error()}
	}
	c := conf.Etcd.StoreConfig()
	raw[endpoints] = strings.Join(c.Endpoints, ",")
	raw[api], raw[prefix], raw[timeout] = c.API, c.Prefix, c.Timeout.String()
	raw[ca], raw[cert], raw[key] = c.CA, c.Cert, c.Key
	raw[username], raw[password] = c.Username, c.Password
	return raw, conf.Host.Name, nil
}

// build turns raw settings into a config with the netconf's defaults and
// validation (etcdcfg), naming flags in errors.
func build(raw [nSettings]string) (etcdcfg.Config, error) {
	c := etcdcfg.Config{
		API: raw[api], Prefix: raw[prefix], CA: raw[ca], Cert: raw[cert], Key: raw[key],
		Username: raw[username], Password: raw[password],
	}
	var err error
	if c.Endpoints, err = parseEndpoints(raw[endpoints]); err != nil {
		return c, err
	}
	if c.Timeout, err = parseTimeout(raw[timeout]); err != nil {
		return c, err
	}
	c = c.WithDefaults()
	var fe *etcdcfg.FieldError
	if err := c.Validate(); errors.As(err, &fe) {
		return c, &Error{Field: flagField(fe.Field), Value: fe.Value, Reason: fe.Reason}
	}
	return c, nil
}

// flagField names the flags of an etcdcfg setting.
func flagField(f etcdcfg.Field) string {
	switch f {
	case etcdcfg.FieldEndpoints:
		return field(endpoints)
	case etcdcfg.FieldAPI:
		return field(api)
	case etcdcfg.FieldPrefix:
		return field(prefix)
	case etcdcfg.FieldTimeout:
		return field(timeout)
	case etcdcfg.FieldTLS:
		return field(cert) + ", " + field(key)
	}
	return field(username) + ", " + field(password)
}

// parseEndpoints splits a comma-separated list of URLs.
func parseEndpoints(s string) ([]string, error) {
	var out []string
	for _, ep := range strings.Split(s, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			out = append(out, ep)
		}
	}
	return out, nil
}

// parseTimeout reads a Go duration ("2s") or a number of seconds ("2").
func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil // the default
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, serr := strconv.ParseFloat(s, 64)
		if serr != nil {
			return 0, &Error{Field: field(timeout), Value: s, Reason: "not a duration like 2s"}
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 {
		return 0, &Error{Field: field(timeout), Value: s, Reason: "must be positive"}
	}
	return d, nil
}

// IsInput reports whether err is a bad setting (rather than etcd failing).
func IsInput(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
