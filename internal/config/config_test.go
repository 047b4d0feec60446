package config

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/ratchet-cni/ratchet/internal/etcdcfg"
)

const minimal = `{"cniVersion":"1.0.0","name":"n","type":"ratchet","delegates":[{"type":"bridge"}]}`

func TestLoadAppliesDefaults(t *testing.T) {
	c, err := Load([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]bool{
		"endpoints":   len(c.Etcd.Endpoints) == 1 && c.Etcd.Endpoints[0] == etcdcfg.DefaultEndpoint,
		"api":         c.Etcd.API == "v2",
		"prefix":      c.Etcd.Prefix == "/ratchet",
		"timeout":     c.Etcd.Timeout.D() == 2*time.Second,
		"metadata":    strings.Join(c.Metadata, ",") == "docker,kubernetes,etcd",
		"docker.host": c.Docker.Host == DefaultDockerHost,
		"host.name":   c.Host.Name != "",
		"cniDir":      c.CNIDir == DefaultCNIDir,
		"logLevel":    c.LogLevel == "info",
		"pairTimeout": c.PairTimeout.D() == 120*time.Second,
		"vxlan.port":  c.Vxlan.Port == 4789,
		"master":      c.MasterIndex() == 0,
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("default %s not applied: %+v", name, c)
		}
	}
}

func TestLoadLegacyAliases(t *testing.T) {
	c, err := Load([]byte(`{"cniVersion":"0.3.1","name":"n","delegates":[{"type":"flannel"}],
		"etcd_host":"192.0.2.7","etcd_port":"12379","parent_interface":"ens3","parent_address":"198.51.100.4"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Etcd.Endpoints[0] != "http://192.0.2.7:12379" || c.Host.Interface != "ens3" || c.Host.Address != "198.51.100.4" {
		t.Fatalf("legacy fields not mapped: %+v %+v", c.Etcd, c.Host)
	}
	c, err = Load([]byte(`{"cniVersion":"0.3.1","name":"n","delegates":[{"type":"flannel"}],"etcd_host":"h","etcd_port":2379}`))
	if err != nil || c.Etcd.Endpoints[0] != "http://h:2379" {
		t.Fatalf("numeric etcd_port: %v %v", c, err)
	}
}

func TestLoadErrorsNameTheField(t *testing.T) {
	base := `"cniVersion":"1.0.0","name":"n","type":"ratchet"`
	d := `"delegates":[{"type":"bridge"}]`
	cases := map[string]struct{ conf, field string }{
		"no delegates":          {`{` + base + `}`, "delegates"},
		"empty delegates":       {`{` + base + `,"delegates":[]}`, "delegates"},
		"delegate without type": {`{` + base + `,"delegates":[{"bridge":"x"}]}`, "delegates[0].type"},
		"delegate is ratchet":   {`{` + base + `,"delegates":[{"type":"ratchet"}]}`, "delegates[0].type"},
		"two masters":           {`{` + base + `,"delegates":[{"type":"a","masterplugin":true},{"type":"b","masterplugin":true}]}`, "delegates[1].masterplugin"},
		"master not bool":       {`{` + base + `,"delegates":[{"type":"a","masterplugin":"yes"}]}`, "delegates[0].masterplugin"},
		"delegate bad version":  {`{` + base + `,"delegates":[{"type":"a","cniVersion":"7.0.0"}]}`, "delegates[0].cniVersion"},
		"delegates not a list":  {`{` + base + `,"delegates":{"type":"a"}}`, "delegates"},
		"no cniVersion":         {`{"name":"n",` + d + `}`, "cniVersion"},
		"bad cniVersion":        {`{"cniVersion":"2.0.0","name":"n",` + d + `}`, "cniVersion"},
		"no name":               {`{"cniVersion":"1.0.0",` + d + `}`, "name"},
		"bad api":               {`{` + base + `,` + d + `,"etcd":{"api":"v4"}}`, "etcd.api"},
		"bad endpoint":          {`{` + base + `,` + d + `,"etcd":{"endpoints":["127.0.0.1:2379"]}}`, "etcd.endpoints[0]"},
		"bad timeout":           {`{` + base + `,` + d + `,"etcd":{"timeout":"fast"}}`, "etcd.timeout"},
		"negative timeout":      {`{` + base + `,` + d + `,"etcd":{"timeout":"-1s"}}`, "etcd.timeout"},
		"cert without key":      {`{` + base + `,` + d + `,"etcd":{"tls":{"cert":"/c"}}}`, "etcd.tls"},
		"user without password": {`{` + base + `,` + d + `,"etcd":{"username":"u"}}`, "etcd.username"},
		"bad metadata":          {`{` + base + `,` + d + `,"metadata":["k8s"]}`, "metadata[0]"},
		"relative kubeconfig":   {`{` + base + `,` + d + `,"kubernetes":{"kubeconfig":"kube/config"}}`, "kubernetes.kubeconfig"},
		"dup metadata":          {`{` + base + `,` + d + `,"metadata":["etcd","etcd"]}`, "metadata[1]"},
		"bad host.address":      {`{` + base + `,` + d + `,"host":{"address":"not-ip"}}`, "host.address"},
		"bad host.interface":    {`{` + base + `,` + d + `,"host":{"interface":"a/b"}}`, "host.interface"},
		"relative cniDir":       {`{` + base + `,` + d + `,"cniDir":"var/lib"}`, "cniDir"},
		"bad logLevel":          {`{` + base + `,` + d + `,"logLevel":"loud"}`, "logLevel"},
		"bad pairTimeout":       {`{` + base + `,` + d + `,"pairTimeout":12}`, "pairTimeout"},
		"bad vxlan.port":        {`{` + base + `,` + d + `,"vxlan":{"port":70000}}`, "vxlan.port"},
		"bad vxlan.mtu":         {`{` + base + `,` + d + `,"vxlan":{"mtu":20}}`, "vxlan.mtu"},
		"etcd_port bad":         {`{` + base + `,` + d + `,"etcd_port":"http"}`, "etcd_port"},
		"legacy conflict":       {`{` + base + `,` + d + `,"etcd_host":"h","etcd":{"endpoints":["http://a:1"]}}`, "etcd_host"},
		"wrong type":            {`{` + base + `,` + d + `,"cniDir":5}`, "cniDir"},
		"malformed":             {`{` + base, "netconf"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load([]byte(tc.conf))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			if ce.Field != tc.field {
				t.Fatalf("error names %q, want %q: %v", ce.Field, tc.field, err)
			}
		})
	}
}

func TestPrepDelegatesInheritsAndNamesInterfaces(t *testing.T) {
	c, err := Load([]byte(`{"cniVersion":"1.1.0","name":"net","delegates":[
		{"type":"a"},{"type":"b","masterplugin":true},{"type":"c","name":"own","cniVersion":"0.3.1"}],
		"runtimeConfig":{"portMappings":[1],"bandwidth":{"x":1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ds := c.PrepDelegates("net1")
	wantIf := []string{"net2", "net1", "net3"}
	for i, d := range ds {
		if d.IfName != wantIf[i] {
			t.Errorf("delegate %d ifname %s, want %s", i, d.IfName, wantIf[i])
		}
	}
	if !ds[1].Master || c.MasterIndex() != 1 {
		t.Errorf("master not delegate 1: %+v", ds)
	}
	if !strings.Contains(string(ds[0].Conf), `"cniVersion":"1.1.0"`) || !strings.Contains(string(ds[0].Conf), `"name":"net"`) {
		t.Errorf("delegate 0 did not inherit: %s", ds[0].Conf)
	}
	if !strings.Contains(string(ds[2].Conf), `"cniVersion":"0.3.1"`) || !strings.Contains(string(ds[2].Conf), `"name":"own"`) {
		t.Errorf("delegate 2 lost its own fields: %s", ds[2].Conf)
	}
	if strings.Contains(string(ds[1].Conf), "masterplugin") || strings.Contains(string(ds[1].Conf), "runtimeConfig") {
		t.Errorf("delegate 1 conf leaks ratchet fields: %s", ds[1].Conf)
	}
}

func TestCapabilityArgsGoOnlyToDelegatesThatDeclareThem(t *testing.T) {
	c, err := Load([]byte(`{"cniVersion":"1.0.0","name":"n","delegates":[
		{"type":"a","capabilities":{"portMappings":true}},{"type":"b"}],
		"runtimeConfig":{"portMappings":[{"hostPort":8080}],"bandwidth":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ds := c.PrepDelegates("eth0")
	if !strings.Contains(string(ds[0].Conf), `"runtimeConfig":{"portMappings"`) || strings.Contains(string(ds[0].Conf), "bandwidth") {
		t.Errorf("delegate 0 runtimeConfig wrong: %s", ds[0].Conf)
	}
	if strings.Contains(string(ds[1].Conf), "runtimeConfig") {
		t.Errorf("delegate 1 got runtimeConfig: %s", ds[1].Conf)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(`{"cniVersion":"0.3.1","name":"n","delegates":[{"type":"a","masterplugin":true},{"type":"b"}],"etcd_host":"h","etcd_port":"1"}`))
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","delegates":[{}],"etcd":{"timeout":"1s","api":"v3"},"pairTimeout":"3s","vxlan":{"mtu":1400}}`))
	f.Add([]byte(`{"delegates":[null]}`))
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":1}]},
		"delegates":[{"masterplugin":true,"plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]},{"type":"ptp"}]}`))
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","delegates":[{"name":"c","cniVersion":"0.4.0","disableCheck":"true","plugins":[{"type":"a","capabilities":{"x":false}}]}]}`))
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","delegates":[{"type":"a","plugins":[]},{"plugins":[{"plugins":[{}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load(data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		ds := c.PrepDelegates("eth0")
		if len(ds) == 0 || len(ds) > MaxDelegates || !ds[c.MasterIndex()].Master {
			t.Fatalf("loaded config without a master delegate: %+v", ds)
		}
		for _, d := range ds {
			if !d.IsChain() {
				continue
			}
			if len(d.Plugins) > MaxChainPlugins {
				t.Fatalf("chain of %d plugins loaded", len(d.Plugins))
			}
			list, err := libcni.ConfListFromBytes(d.Conf)
			if err != nil || len(list.Plugins) != len(d.Plugins) || !supported(list.CNIVersion) {
				t.Fatalf("loaded chain libcni cannot run: %v %s", err, d.Conf)
			}
		}
	})
}

func TestChainErrorsNameTheField(t *testing.T) {
	base := `"cniVersion":"1.0.0","name":"n","type":"ratchet"`
	chain := func(d string) string { return `{` + base + `,"delegates":[` + d + `]}` }
	many := func(n int, item string) string {
		return strings.TrimSuffix(strings.Repeat(item+",", n), ",")
	}
	cases := map[string]struct{ conf, field string }{
		"empty plugins":           {chain(`{"plugins":[]}`), "delegates[0].plugins"},
		"plugins not a list":      {chain(`{"plugins":{"type":"a"}}`), "delegates[0].plugins"},
		"plugins null":            {chain(`{"plugins":null}`), "delegates[0].plugins"},
		"plugin without type":     {chain(`{"plugins":[{"type":"a"},{"b":1}]}`), "delegates[0].plugins[1].type"},
		"plugin with empty type":  {chain(`{"plugins":[{"type":"a"},{"type":""}]}`), "delegates[0].plugins[1].type"},
		"plugin type not string":  {chain(`{"plugins":[{"type":7}]}`), "delegates[0].plugins[0].type"},
		"plugin is ratchet":       {chain(`{"type":"b"},{"plugins":[{"type":"ratchet"}]}`), "delegates[1].plugins[0].type"},
		"type and plugins":        {chain(`{"type":"bridge","plugins":[{"type":"a"}]}`), "delegates[0].plugins"},
		"plugin not an object":    {chain(`{"plugins":[{"type":"a"},"portmap"]}`), "delegates[0].plugins[1]"},
		"too many plugins":        {chain(`{"plugins":[` + many(MaxChainPlugins+1, `{"type":"a"}`) + `]}`), "delegates[0].plugins"},
		"too many delegates":      {chain(many(MaxDelegates+1, `{"type":"a"}`)), "delegates"},
		"nested chain":            {chain(`{"plugins":[{"plugins":[{"type":"a"}]}]}`), "delegates[0].plugins[0].type"},
		"nested chain with type":  {chain(`{"plugins":[{"type":"a","plugins":[{"type":"b"}]}]}`), "delegates[0].plugins[0].plugins"},
		"master on a plugin":      {chain(`{"plugins":[{"type":"a","masterplugin":true}]}`), "delegates[0].plugins[0].masterplugin"},
		"capabilities on chain":   {chain(`{"capabilities":{"portMappings":true},"plugins":[{"type":"a"}]}`), "delegates[0].capabilities"},
		"runtimeConfig on chain":  {chain(`{"runtimeConfig":{},"plugins":[{"type":"a"}]}`), "delegates[0].runtimeConfig"},
		"cniVersions on chain":    {chain(`{"cniVersions":["1.0.0"],"plugins":[{"type":"a"}]}`), "delegates[0].cniVersions"},
		"chain bad version":       {chain(`{"cniVersion":"9.9.9","plugins":[{"type":"a"}]}`), "delegates[0].cniVersion"},
		"chain bad name":          {chain(`{"name":"a b","plugins":[{"type":"a"}]}`), "delegates[0].name"},
		"chain inherits bad name": {`{"cniVersion":"1.0.0","name":"a/b","delegates":[{"plugins":[{"type":"a"}]}]}`, "name"},
		"chain master not bool":   {chain(`{"masterplugin":1,"plugins":[{"type":"a"}]}`), "delegates[0].masterplugin"},
		"two master chains":       {chain(`{"masterplugin":true,"plugins":[{"type":"a"}]},{"masterplugin":true,"plugins":[{"type":"b"}]}`), "delegates[1].masterplugin"},
		"plugin caps not object":  {chain(`{"plugins":[{"type":"a"},{"type":"portmap","capabilities":["portMappings"]}]}`), "delegates[0].plugins[1].capabilities"},
		"plugin cap not bool":     {chain(`{"plugins":[{"type":"a"},{"type":"portmap","capabilities":{"portMappings":"yes"}}]}`), "delegates[0].plugins[1].capabilities"},
		"delegate caps not bool":  {chain(`{"type":"portmap","capabilities":{"portMappings":1}}`), "delegates[0].capabilities"},
		"plugin ipam not object":  {chain(`{"plugins":[{"type":"bridge","ipam":"host-local"}]}`), "delegates[0].plugins[0]"},
		"disableCheck not a bool": {chain(`{"disableCheck":"maybe","plugins":[{"type":"a"}]}`), "delegates[0]"},
		"netconf too large":       {`{` + base + `,"delegates":[{"type":"a","pad":"` + strings.Repeat("x", MaxNetconfLen) + `"}]}`, "netconf"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load([]byte(tc.conf))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			if ce.Field != tc.field {
				t.Fatalf("error names %q, want %q: %v", ce.Field, tc.field, err)
			}
		})
	}
}

func TestChainLimitsAreInclusive(t *testing.T) {
	plugins := strings.TrimSuffix(strings.Repeat(`{"type":"a"},`, MaxChainPlugins), ",")
	delegates := strings.Repeat(`{"type":"b"},`, MaxDelegates-1) + `{"plugins":[` + plugins + `]}`
	c, err := Load([]byte(`{"cniVersion":"1.0.0","name":"n","delegates":[` + delegates + `]}`))
	if err != nil {
		t.Fatalf("%d delegates, one a chain of %d plugins: %v", MaxDelegates, MaxChainPlugins, err)
	}
	ds := c.PrepDelegates("eth0")
	if last := ds[len(ds)-1]; len(last.Plugins) != MaxChainPlugins || last.IfName != "net31" {
		t.Errorf("last delegate %+v", last)
	}
}

// chainConf decodes a chain delegate's rendered netconf.
type chainConf struct {
	CNIVersion string           `json:"cniVersion"`
	Name       string           `json:"name"`
	Plugins    []map[string]any `json:"plugins"`
}

func TestChainInheritsAndGivesEachPluginItsRuntimeConfig(t *testing.T) {
	c, err := Load([]byte(`{"cniVersion":"1.1.0","name":"net","delegates":[
		{"type":"ptp"},
		{"masterplugin":true,"plugins":[
			{"type":"flannel","cniVersion":"0.3.1","name":"other","delegate":{"hairpinMode":true}},
			{"type":"portmap","capabilities":{"portMappings":true}},
			{"type":"bandwidth","capabilities":{"bandwidth":true,"portMappings":false}}]},
		{"name":"side","cniVersion":"1.0.0","plugins":[{"type":"macvlan"}]}],
		"runtimeConfig":{"portMappings":[{"hostPort":80}],"bandwidth":{"ingressRate":1},"io.kubernetes.cri.pod-annotations":{"a":"b"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ds := c.PrepDelegates("eth0")
	if c.MasterIndex() != 1 || !ds[1].Master || ds[0].Master || ds[2].Master {
		t.Fatalf("master is not delegate 1: %+v", ds)
	}
	if got := []string{ds[0].IfName, ds[1].IfName, ds[2].IfName}; !slices.Equal(got, []string{"net1", "eth0", "net2"}) {
		t.Errorf("ifnames %v", got)
	}
	if ds[0].IsChain() || !ds[1].IsChain() || ds[1].Type != "flannel+portmap+bandwidth" ||
		!slices.Equal(ds[1].Plugins, []string{"flannel", "portmap", "bandwidth"}) {
		t.Errorf("delegates %+v", ds)
	}
	var master, side chainConf
	if err := json.Unmarshal(ds[1].Conf, &master); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ds[2].Conf, &side); err != nil {
		t.Fatal(err)
	}
	if master.CNIVersion != "1.1.0" || master.Name != "net" || side.CNIVersion != "1.0.0" || side.Name != "side" {
		t.Errorf("chains did not inherit: %+v %+v", master, side)
	}
	if strings.Contains(string(ds[1].Conf), "masterplugin") {
		t.Errorf("chain conf leaks masterplugin: %s", ds[1].Conf)
	}
	for _, p := range append(master.Plugins, side.Plugins...) {
		want := map[string]string{"flannel": "net", "portmap": "net", "bandwidth": "net", "macvlan": "side"}[p["type"].(string)]
		if p["name"] != want || (p["type"] == "macvlan") != (p["cniVersion"] == "1.0.0") || (p["type"] != "macvlan") != (p["cniVersion"] == "1.1.0") {
			t.Errorf("plugin %v does not carry its chain's name and cniVersion", p)
		}
	}
	rc := func(i int) string {
		b, _ := json.Marshal(master.Plugins[i]["runtimeConfig"])
		return string(b)
	}
	if rc(0) != "null" || rc(1) != `{"portMappings":[{"hostPort":80}]}` || rc(2) != `{"bandwidth":{"ingressRate":1}}` {
		t.Errorf("runtimeConfig per plugin: flannel %s, portmap %s, bandwidth %s", rc(0), rc(1), rc(2))
	}
	if master.Plugins[0]["delegate"].(map[string]any)["hairpinMode"] != true {
		t.Errorf("flannel lost its own fields: %v", master.Plugins[0])
	}
}

func TestLoadKubernetesSource(t *testing.T) {
	c, err := Load([]byte(`{"cniVersion":"1.0.0","name":"n","delegates":[{"type":"bridge"}],
		"metadata":["kubernetes"],"kubernetes":{"kubeconfig":"/etc/kubernetes/kubelet.conf"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Metadata, []string{SourceKubernetes}) || c.Kubernetes.Kubeconfig != "/etc/kubernetes/kubelet.conf" {
		t.Fatalf("metadata %v, kubernetes %+v", c.Metadata, c.Kubernetes)
	}
	_, err = Load([]byte(`{"cniVersion":"1.0.0","name":"n","delegates":[{"type":"bridge"}],"metadata":["k8s"]}`))
	if err == nil || !strings.Contains(err.Error(), `"docker", "kubernetes" or "etcd"`) {
		t.Fatalf("unknown source: %v, want the three names", err)
	}
}
