package testenv

import (
	"os"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/etcdcfg"
)

// APIs returns the etcd APIs ratchet supports, in the order the two-API
// tests run them.
func APIs() []string { return []string{etcdcfg.APIv2, etcdcfg.APIv3} }

// ForEachAPI runs fn once per etcd API, in subtests named by the API ("v2",
// then "v3"), one after the other. fn may call t.Parallel.
func ForEachAPI(t *testing.T, fn func(t *testing.T, api string)) {
	t.Helper()
	for _, api := range APIs() {
		t.Run(api, func(t *testing.T) { fn(t, api) })
	}
}

// EtcdEnv is the whole environment of a tool run (announcer, ratchetctl)
// against the etcd at url: PATH and the ETCD_* settings, nothing else.
func EtcdEnv(url, api, prefix string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "ETCD_ENDPOINTS=" + url, "ETCD_API=" + api,
		"ETCD_PREFIX=" + prefix, "ETCD_TIMEOUT=" + etcdcfg.DefaultTimeout.String()}
}
