// Package examples holds ratchet's example netconfs (10-ratchet.conf for a
// flannel cluster, 10-ratchet-bridge.conf for tests) and Kubernetes manifests
// (k8s/). It has no code: its tests load every netconf with config.Load and
// decode every manifest strictly into its Kubernetes API type, so that a
// misspelt field or a wrong type fails the build instead of a deployment.
package examples
