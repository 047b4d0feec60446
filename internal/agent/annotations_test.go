package agent

import (
	"errors"
	"maps"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/pairing"
)

// The pod annotations containerd passes in runtimeConfig reach the
// request as strings; anything else there is a bad netconf naming the key.
func TestPodAnnotationsFromRuntimeConfig(t *testing.T) {
	load := func(rc string) map[string]any {
		t.Helper()
		c, err := config.Load([]byte(`{"cniVersion":"1.0.0","name":"n","delegates":[{"type":"bridge"}],"runtimeConfig":` + rc + `}`))
		if err != nil {
			t.Fatal(err)
		}
		return c.RuntimeConfig
	}
	got, err := podAnnotations(load(`{"io.kubernetes.cri.pod-annotations":{"ratchet":"true","other":"x"}}`))
	if err != nil || !maps.Equal(got, map[string]string{"ratchet": "true", "other": "x"}) {
		t.Fatalf("annotations = %v, %v", got, err)
	}
	if got, err := podAnnotations(load(`{"portMappings":[]}`)); got != nil || err != nil {
		t.Fatalf("no annotations: %v, %v; want nil", got, err)
	}
	for _, bad := range []string{`{"io.kubernetes.cri.pod-annotations":["x"]}`, `{"io.kubernetes.cri.pod-annotations":{"ratchet":true}}`} {
		if _, err := podAnnotations(load(bad)); !errors.Is(err, pairing.ErrBadConfig) {
			t.Errorf("%s: %v, want a bad netconf", bad, err)
		}
	}
}
