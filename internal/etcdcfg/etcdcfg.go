// Package etcdcfg holds the settings of ratchet's etcd connection: one type,
// its defaults and its validation, shared by the netconf, the command-line
// tools' flags and the store. It imports nothing of ratchet, so every
// binary can read etcd settings without linking an etcd client.
package etcdcfg

import (
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"
)

// Defaults of an etcd connection.
const (
	DefaultEndpoint = "http://127.0.0.1:2379"
	DefaultAPI      = APIv2
	DefaultPrefix   = "/ratchet"
	DefaultTimeout  = 2 * time.Second
)

// API names of Config.API.
const (
	APIv2 = "v2"
	APIv3 = "v3"
)

// Config is an etcd connection.
type Config struct {
	// Endpoints are client URLs, e.g. http://127.0.0.1:2379 (https:// for TLS).
	Endpoints []string
	// API is "v2" (the default when empty) or "v3".
	API string
	// Prefix is the directory every key lives under, e.g. "/ratchet".
	Prefix string
	// Timeout bounds dialing and each request (not watches).
	Timeout time.Duration
	// CA, Cert and Key are PEM files for TLS (all optional).
	CA, Cert, Key string
	// Username and Password authenticate to etcd when Username is set.
	Username, Password string
}

// Field is the setting a FieldError is about.
type Field int

// The settings a FieldError can name.
const (
	FieldEndpoints Field = iota
	FieldAPI
	FieldPrefix
	FieldTimeout
	// FieldTLS: cert and key given apart.
	FieldTLS
	// FieldAuth: username and password given apart.
	FieldAuth
)

// FieldError is an invalid setting. Index is the endpoint's position for
// FieldEndpoints; Value is the offending value ("" when none applies).
type FieldError struct {
	Field  Field
	Index  int
	Value  string
	Reason string
}

// Name is the setting's name in the netconf ("etcd.api",
// "etcd.endpoints[1]"); tools that present it under another name (a flag)
// use Field instead.
func (e *FieldError) Name() string {
	name := [...]string{"etcd.endpoints", "etcd.api", "etcd.prefix", "etcd.timeout", "etcd.tls", "etcd.username"}[e.Field]
	if e.Field == FieldEndpoints {
		name = fmt.Sprintf("%s[%d]", name, e.Index)
	}
	return name
}

// Message says what is wrong, with the value when there is one.
func (e *FieldError) Message() string {
	if e.Value == "" {
		return e.Reason
	}
	return fmt.Sprintf("%q %s", e.Value, e.Reason)
}

// Error is "name: message".
func (e *FieldError) Error() string { return e.Name() + ": " + e.Message() }

// NormalizePrefix returns prefix as a clean absolute path without a trailing
// slash ("ratchet/" → "/ratchet"); the root comes back as "".
func NormalizePrefix(prefix string) string {
	p := path.Clean("/" + prefix)
	if p == "/" {
		return ""
	}
	return p
}

// WithDefaults returns c with the defaults filled in where a setting is
// empty, and the prefix normalised.
func (c Config) WithDefaults() Config {
	if len(c.Endpoints) == 0 {
		c.Endpoints = []string{DefaultEndpoint}
	}
	if c.API == "" {
		c.API = DefaultAPI
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = NormalizePrefix(c.Prefix)
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate checks every setting of c (defaults applied) and returns a
// *FieldError for the first bad one.
func (c Config) Validate() error {
	for i, ep := range c.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{Field: FieldEndpoints, Index: i, Value: ep, Reason: "is not an http(s)://host:port URL"}
		}
	}
	if c.API != APIv2 && c.API != APIv3 {
		return &FieldError{Field: FieldAPI, Value: c.API, Reason: `is not "v2" or "v3"`}
	}
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, " \t\r\n") {
		return &FieldError{Field: FieldPrefix, Value: c.Prefix, Reason: "must be a path like /ratchet"}
	}
	if c.Timeout <= 0 {
		return &FieldError{Field: FieldTimeout, Value: c.Timeout.String(), Reason: "must be positive"}
	}
	if (c.Cert == "") != (c.Key == "") {
		return &FieldError{Field: FieldTLS, Reason: "cert and key go together"}
	}
	if (c.Username == "") != (c.Password == "") {
		return &FieldError{Field: FieldAuth, Reason: "username and password go together"}
	}
	return nil
}
