package etcdflag

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/etcdcfg"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func resolve(t *testing.T, args []string, env map[string]string) (etcdcfg.Config, *Flags, error) {
	t.Helper()
	var f Flags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Config(envOf(env))
	return cfg, &f, err
}

func TestConfigTakesFlagsOverEnvironmentOverDefaults(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want etcdcfg.Config
	}{
		{"defaults", nil, nil, etcdcfg.Config{
			Endpoints: []string{"http://127.0.0.1:2379"}, API: "v2", Prefix: "/ratchet", Timeout: 2 * time.Second}},
		{"environment", nil, map[string]string{
			"ETCD_ENDPOINTS": "http://a:1, http://b:2", "ETCD_API": "v3", "ETCD_PREFIX": "lab/", "ETCD_TIMEOUT": "3",
			"ETCD_USERNAME": "u", "ETCD_PASSWORD": "p",
		}, etcdcfg.Config{
			Endpoints: []string{"http://a:1", "http://b:2"}, API: "v3", Prefix: "/lab", Timeout: 3 * time.Second,
			Username: "u", Password: "p"}},
		{"flags win", []string{"--etcd-endpoints", "https://c:3", "--etcd-api=v2", "--etcd-timeout", "500ms",
			"--etcd-ca", "ca.pem", "--etcd-cert", "c.pem", "--etcd-key", "k.pem"},
			map[string]string{"ETCD_ENDPOINTS": "http://a:1", "ETCD_API": "v3", "ETCD_PREFIX": "/env"},
			etcdcfg.Config{Endpoints: []string{"https://c:3"}, API: "v2", Prefix: "/env", Timeout: 500 * time.Millisecond,
				CA: "ca.pem", Cert: "c.pem", Key: "k.pem"}},
		{"empty flag overrides variable", []string{"--etcd-prefix="}, map[string]string{"ETCD_PREFIX": "/env"},
			etcdcfg.Config{Endpoints: []string{"http://127.0.0.1:2379"}, API: "v2", Prefix: "/ratchet", Timeout: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := resolve(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"ETCD_API": "v4"}, `--etcd-api/ETCD_API: "v4": is not "v2" or "v3"`},
		{[]string{"--etcd-endpoints", "127.0.0.1:2379"}, nil, "--etcd-endpoints/ETCD_ENDPOINTS"},
		{nil, map[string]string{"ETCD_ENDPOINTS": "ftp://x"}, `"ftp://x": is not an http(s)://host:port URL`},
		{[]string{"--etcd-timeout", "soon"}, nil, "--etcd-timeout/ETCD_TIMEOUT"},
		{[]string{"--etcd-timeout", "-1s"}, nil, "must be positive"},
		{[]string{"--etcd-cert", "c.pem"}, nil, "cert and key go together"},
		{nil, map[string]string{"ETCD_USERNAME": "u"}, "username and password go together"},
		{[]string{"--etcd-prefix", "/"}, nil, "--etcd-prefix/ETCD_PREFIX"},
		{[]string{"--netconf", "/nonexistent/10-ratchet.conf"}, nil, "--netconf"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, _, err := resolve(t, tt.args, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !IsInput(err) {
				t.Fatalf("err = %v, want an input error containing %q", err, tt.want)
			}
		})
	}
}

func TestNetconfGivesSettingsAndHostFlagsStillWin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "10-ratchet.conf")
	conf := `{"cniVersion":"1.0.0","name":"n","type":"ratchet","delegates":[{"type":"bridge"}],
		"etcd":{"endpoints":["http://10.0.0.1:2379"],"api":"v3","prefix":"/lab","timeout":"5s"},
		"host":{"name":"node7"}}`
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ETCD_ENDPOINTS": "http://env:1", "ETCD_PREFIX": "/env"}
	got, f, err := resolve(t, []string{"--netconf", path, "--etcd-prefix", "/flag"}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := etcdcfg.Config{Endpoints: []string{"http://10.0.0.1:2379"}, API: "v3", Prefix: "/flag", Timeout: 5 * time.Second}
	if !reflect.DeepEqual(got, want) || f.Host != "node7" {
		t.Errorf("got %+v host %q\nwant %+v host node7", got, f.Host, want)
	}
}
