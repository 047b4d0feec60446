package config

import (
	"encoding/json"
	"fmt"
)

// Delegate is one delegate plugin ready to run.
type Delegate struct {
	// Type is the plugin binary's name.
	Type string `json:"type"`
	// Master is true for the delegate that gets the runtime's interface and
	// whose Result ratchet prints.
	Master bool `json:"master,omitempty"`
	// IfName is the interface name this delegate is run with (set by
	// PrepDelegates).
	IfName string `json:"ifname,omitempty"`
	// Conf is the delegate's own netconf, with cniVersion and name inherited
	// and runtimeConfig filtered to its capabilities.
	Conf json.RawMessage `json:"conf"`
}

// buildDelegates validates the "delegates" list and renders each delegate's
// netconf.
func buildDelegates(c *NetConf) ([]Delegate, error) {
	if len(c.Delegates) == 0 {
		return nil, fieldErr("delegates", "at least one delegate is required")
	}
	masters := 0
	out := make([]Delegate, 0, len(c.Delegates))
	for i, raw := range c.Delegates {
		field := fmt.Sprintf("delegates[%d]", i)
		if raw == nil {
			return nil, fieldErr(field, "must be an object")
		}
		d, err := buildDelegate(c, field, raw)
		if err != nil {
			return nil, err
		}
		if d.Master {
			masters++
			if masters > 1 {
				return nil, fieldErr(field+".masterplugin", "only one delegate may be the master")
			}
		}
		out = append(out, d)
	}
	if masters == 0 {
		out[0].Master = true
	}
	return out, nil
}

func buildDelegate(c *NetConf, field string, raw map[string]any) (Delegate, error) {
	typ, ok := raw["type"].(string)
	if !ok || typ == "" {
		return Delegate{}, fieldErr(field+".type", "missing plugin type")
	}
	if typ == c.Type {
		return Delegate{}, fieldErr(field+".type", "a delegate cannot be %q itself", typ)
	}
	master := false
	if m, present := raw["masterplugin"]; present {
		b, ok := m.(bool)
		if !ok {
			return Delegate{}, fieldErr(field+".masterplugin", "must be true or false")
		}
		master = b
	}
	conf := make(map[string]any, len(raw)+2)
	for k, v := range raw {
		if k != "masterplugin" {
			conf[k] = v
		}
	}
	if v, ok := conf["cniVersion"].(string); !ok || v == "" {
		conf["cniVersion"] = c.CNIVersion
	} else if !supported(v) {
		return Delegate{}, fieldErr(field+".cniVersion", "%q is not supported (supported: %v)", v, SupportedVersions)
	}
	if v, ok := conf["name"].(string); !ok || v == "" {
		conf["name"] = c.Name
	}
	if rc := capabilityArgs(c.RuntimeConfig, raw["capabilities"]); len(rc) > 0 {
		conf["runtimeConfig"] = rc
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return Delegate{}, fieldErr(field, "cannot encode: %v", err)
	}
	return Delegate{Type: typ, Master: master, Conf: b}, nil
}

// capabilityArgs keeps the runtimeConfig entries the delegate declares as
// capabilities, as libcni does for a plugin it runs itself.
func capabilityArgs(rc map[string]any, caps any) map[string]any {
	capMap, ok := caps.(map[string]any)
	if !ok || len(rc) == 0 {
		return nil
	}
	out := map[string]any{}
	for name, on := range capMap {
		if b, _ := on.(bool); b {
			if v, present := rc[name]; present {
				out[name] = v
			}
		}
	}
	return out
}
