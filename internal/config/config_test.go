package config

import (
	"errors"
	"strings"
	"testing"
	"time"

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
		"metadata":    strings.Join(c.Metadata, ",") == "docker,etcd",
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
		if len(ds) == 0 || !ds[c.MasterIndex()].Master {
			t.Fatalf("loaded config without a master delegate: %+v", ds)
		}
	})
}
