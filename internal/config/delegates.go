package config

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/utils"
)

// Limits of the delegates list. A netconf is bounded as a whole by
// MaxNetconfLen; these bound the number of plugins ratchet runs per call.
const (
	// MaxDelegates bounds the "delegates" list (one pod interface each).
	MaxDelegates = 32
	// MaxChainPlugins bounds the plugins of one delegate chain.
	MaxChainPlugins = 16
)

// Delegate is one delegate ready to run: a single plugin, or a chain of
// plugins run with libcni's rules for a network configuration list.
type Delegate struct {
	// Type is the plugin binary's name; for a chain, its plugins' types
	// joined by "+" (for messages only).
	Type string `json:"type"`
	// Plugins lists the types of a chain's plugins, in order; it is empty
	// for a single plugin.
	Plugins []string `json:"plugins,omitempty"`
	// Master is true for the delegate that gets the runtime's interface and
	// whose Result ratchet prints.
	Master bool `json:"master,omitempty"`
	// IfName is the interface name this delegate is run with (set by
	// PrepDelegates).
	IfName string `json:"ifname,omitempty"`
	// Conf is the delegate's own netconf, with cniVersion and name inherited
	// and runtimeConfig filtered to its capabilities. For a chain it is a
	// network configuration list ("plugins") whose plugins carry the
	// chain's cniVersion and name and each its own runtimeConfig.
	Conf json.RawMessage `json:"conf"`
}

// IsChain reports whether the delegate is a chain of plugins.
func (d Delegate) IsChain() bool { return len(d.Plugins) > 0 }

// buildDelegates validates the "delegates" list and renders each delegate's
// netconf.
func buildDelegates(c *NetConf) ([]Delegate, error) {
	if len(c.Delegates) == 0 {
		return nil, fieldErr("delegates", "at least one delegate is required")
	}
	if len(c.Delegates) > MaxDelegates {
		return nil, fieldErr("delegates", "%d delegates, more than the limit of %d", len(c.Delegates), MaxDelegates)
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
	master := false
	if m, present := raw["masterplugin"]; present {
		b, ok := m.(bool)
		if !ok {
			return Delegate{}, fieldErr(field+".masterplugin", "must be true or false")
		}
		master = b
	}
	if _, chain := raw["plugins"]; chain {
		if _, typed := raw["type"]; typed {
			return Delegate{}, fieldErr(field+".plugins", "a delegate is one plugin (\"type\") or a chain (\"plugins\"), not both")
		}
		return buildChain(c, field, raw, master)
	}
	typ, err := pluginType(c, field, raw)
	if err != nil {
		return Delegate{}, err
	}
	conf, err := inherit(c, field, raw)
	if err != nil {
		return Delegate{}, err
	}
	if err := withRuntimeConfig(c, field, conf); err != nil {
		return Delegate{}, err
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return Delegate{}, fieldErr(field, "cannot encode: %v", err)
	}
	return Delegate{Type: typ, Master: master, Conf: b}, nil
}

// buildChain renders a delegate that is a plugin chain as a network
// configuration list: each plugin gets the chain's cniVersion and name (as
// libcni gives them) and the runtimeConfig of the capabilities it declares.
func buildChain(c *NetConf, field string, raw map[string]any, master bool) (Delegate, error) {
	list, ok := raw["plugins"].([]any)
	switch {
	case !ok:
		return Delegate{}, fieldErr(field+".plugins", "must be a list of plugin netconfs")
	case len(list) == 0:
		return Delegate{}, fieldErr(field+".plugins", "a chain needs at least one plugin")
	case len(list) > MaxChainPlugins:
		return Delegate{}, fieldErr(field+".plugins", "%d plugins, more than the limit of %d", len(list), MaxChainPlugins)
	}
	for _, k := range []string{"capabilities", "runtimeConfig"} {
		if _, present := raw[k]; present {
			return Delegate{}, fieldErr(field+"."+k, "belongs on the plugins of a chain, not on the chain")
		}
	}
	if _, present := raw["cniVersions"]; present {
		return Delegate{}, fieldErr(field+".cniVersions", "not supported in a delegate; give cniVersion")
	}
	conf, err := inherit(c, field, raw)
	if err != nil {
		return Delegate{}, err
	}
	name := conf["name"].(string)
	if err := utils.ValidateNetworkName(name); err != nil {
		return Delegate{}, fieldErr(nameField(field, raw), "%q is not a network name: %s", name, err.Msg)
	}
	types := make([]string, len(list))
	plugins := make([]any, len(list))
	for j, p := range list {
		pfield := fmt.Sprintf("%s.plugins[%d]", field, j)
		pm, ok := p.(map[string]any)
		if !ok {
			return Delegate{}, fieldErr(pfield, "must be an object")
		}
		if types[j], err = pluginType(c, pfield, pm); err != nil {
			return Delegate{}, err
		}
		for _, k := range []string{"plugins", "masterplugin"} {
			if _, present := pm[k]; present {
				return Delegate{}, fieldErr(pfield+"."+k, "belongs on the delegate, not on a plugin of its chain")
			}
		}
		pc := make(map[string]any, len(pm)+3)
		for k, v := range pm {
			pc[k] = v
		}
		pc["cniVersion"], pc["name"] = conf["cniVersion"], name
		if err := withRuntimeConfig(c, pfield, pc); err != nil {
			return Delegate{}, err
		}
		b, err := json.Marshal(pc)
		if err != nil {
			return Delegate{}, fieldErr(pfield, "cannot encode: %v", err)
		}
		if _, err := libcni.ConfFromBytes(b); err != nil {
			return Delegate{}, fieldErr(pfield, "%v", err)
		}
		plugins[j] = pc
	}
	conf["plugins"] = plugins
	b, err := json.Marshal(conf)
	if err != nil {
		return Delegate{}, fieldErr(field, "cannot encode: %v", err)
	}
	// The runner parses the chain with libcni at every call: make sure it
	// can now (e.g. disableCheck must be a boolean).
	if _, err := libcni.ConfListFromBytes(b); err != nil {
		return Delegate{}, fieldErr(field, "%v", err)
	}
	return Delegate{Type: strings.Join(types, "+"), Plugins: types, Master: master, Conf: b}, nil
}

// pluginType returns the "type" of one plugin netconf.
func pluginType(c *NetConf, field string, raw map[string]any) (string, error) {
	typ, ok := raw["type"].(string)
	if !ok || typ == "" {
		return "", fieldErr(field+".type", "missing plugin type")
	}
	if typ == c.Type {
		return "", fieldErr(field+".type", "a delegate cannot be %q itself", typ)
	}
	return typ, nil
}

// inherit copies a delegate's netconf without ratchet's own keys and gives
// it ratchet's cniVersion and name when it lacks them.
func inherit(c *NetConf, field string, raw map[string]any) (map[string]any, error) {
	conf := make(map[string]any, len(raw)+2)
	for k, v := range raw {
		if k != "masterplugin" {
			conf[k] = v
		}
	}
	if v, ok := conf["cniVersion"].(string); !ok || v == "" {
		conf["cniVersion"] = c.CNIVersion
	} else if !supported(v) {
		return nil, fieldErr(field+".cniVersion", "%q is not supported (supported: %v)", v, SupportedVersions)
	}
	if v, ok := conf["name"].(string); !ok || v == "" {
		conf["name"] = c.Name
	}
	return conf, nil
}

// nameField is the field a delegate's name comes from: its own, or the
// netconf's when it inherits it.
func nameField(field string, raw map[string]any) string {
	if v, ok := raw["name"].(string); ok && v != "" {
		return field + ".name"
	}
	return "name"
}

// withRuntimeConfig validates a plugin's "capabilities" and sets its
// runtimeConfig to the netconf's runtimeConfig entries it declares.
func withRuntimeConfig(c *NetConf, field string, conf map[string]any) error {
	caps, present := conf["capabilities"]
	if !present {
		return nil
	}
	capMap, ok := caps.(map[string]any)
	if !ok {
		return fieldErr(field+".capabilities", "must be an object of capability names to true or false")
	}
	for name, on := range capMap {
		if _, ok := on.(bool); !ok {
			return fieldErr(field+".capabilities", "%q must be true or false", name)
		}
	}
	if rc := capabilityArgs(c.RuntimeConfig, capMap); len(rc) > 0 {
		conf["runtimeConfig"] = rc
	}
	return nil
}

// capabilityArgs keeps the runtimeConfig entries the plugin declares as
// capabilities, as libcni does for a plugin it runs itself.
func capabilityArgs(rc map[string]any, caps map[string]any) map[string]any {
	if len(rc) == 0 {
		return nil
	}
	out := map[string]any{}
	for name, on := range caps {
		if b, _ := on.(bool); b {
			if v, present := rc[name]; present {
				out[name] = v
			}
		}
	}
	return out
}
