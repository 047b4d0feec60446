package kubemeta

import (
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoCredentials is returned by Config when no kubeconfig is given and
// the agent does not run in a pod with a service account.
var ErrNoCredentials = errors.New("no Kubernetes credentials: no kubeconfig set and not in a cluster")

// Client rate limits: the watch is one list and one watch, the rest is a
// GET per pod the watch has not seen yet and an Event per link change.
const (
	clientQPS   = 20
	clientBurst = 50
	userAgent   = "ratchetd"
)

// Config returns the API client configuration of the agent: from the
// kubeconfig file when kubeconfig is set, else the in-cluster service
// account; when neither is available, an error matching ErrNoCredentials.
// No overall client timeout is set (it would cut the watch): every call
// carries its own deadline.
func Config(kubeconfig string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
	} else {
		cfg, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, fmt.Errorf("%w (%w)", ErrNoCredentials, err)
		}
		if err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes credentials: %w", err)
		}
	}
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	cfg.UserAgent = userAgent
	return cfg, nil
}
