package k8senv

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FlannelNetworkConfig is flanneld's network configuration, stored at
// FlannelPrefix/config.
var FlannelNetworkConfig = fmt.Sprintf(`{"Network": %q, "SubnetLen": 24, "Backend": {"Type": "vxlan"}}`, PodCIDR)

// inCP is the command-line prefix that runs a program in the control
// plane's netns.
func (c *Cluster) inCP() []string {
	return []string{"nsenter", "--net=" + c.ControlPlane.Path(), "--"}
}

// startControlPlane starts etcd, the apiserver, the controller manager and
// the scheduler in the control plane's netns and waits for the apiserver.
func (c *Cluster) startControlPlane(ctx context.Context) error {
	p, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	c.pki = p
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	if err := c.putEtcd(ctx, FlannelPrefix+"/config", FlannelNetworkConfig); err != nil {
		return fmt.Errorf("flannel config: %w", err)
	}
	if err := c.startAPIServer(ctx); err != nil {
		return err
	}
	return c.startControllers()
}

// startEtcd starts the control plane's etcd (the apiserver's store and
// flanneld's) on loopback and the control plane's underlay address.
func (c *Cluster) startEtcd(ctx context.Context) error {
	etcd, err := c.startProc("etcd", append(c.inCP(), filepath.Join(c.Bin, "etcd"),
		"--name", "cp", "--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379,http://"+ControlPlaneIP+":2379",
		"--advertise-client-urls", "http://"+ControlPlaneIP+":2379",
		"--listen-peer-urls", "http://127.0.0.1:2380",
		"--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "cp=http://127.0.0.1:2380",
		"--log-level", "warn", "--quota-backend-bytes", "1073741824")...)
	if err != nil {
		return err
	}
	hc := httpIn(c.ControlPlane.Path(), nil)
	defer hc.CloseIdleConnections()
	return waitFor(ctx, startTimeout, 100*time.Millisecond, "etcd", func() error {
		if err := etcd.alive(); err != nil {
			return err
		}
		resp, err := hc.Get("http://127.0.0.1:2379/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/health: %s", resp.Status)
		}
		return nil
	})
}

// putEtcd writes one key through etcd's v3 JSON gateway.
func (c *Cluster) putEtcd(ctx context.Context, key, value string) error {
	body, _ := json.Marshal(map[string]string{
		"key":   base64.StdEncoding.EncodeToString([]byte(key)),
		"value": base64.StdEncoding.EncodeToString([]byte(value)),
	})
	hc := httpIn(c.ControlPlane.Path(), nil)
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:2379/v3/kv/put", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("put %s: %s: %s", key, resp.Status, b)
	}
	return nil
}

// startAPIServer starts kube-apiserver (RBAC and Node authorization, client
// certificates) and waits until /readyz answers.
func (c *Cluster) startAPIServer(ctx context.Context) error {
	crt, key, err := c.pki.cert("apiserver", "kube-apiserver", nil,
		[]string{ControlPlaneIP, "127.0.0.1", "10.96.0.1"},
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"})
	if err != nil {
		return err
	}
	kcrt, kkey, err := c.pki.cert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil)
	if err != nil {
		return err
	}
	admin, err := c.pki.kubeconfig("admin", "kubernetes-admin", "system:masters")
	if err != nil {
		return err
	}
	api, err := c.startProc("kube-apiserver", append(c.inCP(), filepath.Join(c.Bin, "kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address="+ControlPlaneIP, "--advertise-address="+ControlPlaneIP, "--secure-port=6443",
		"--tls-cert-file="+crt, "--tls-private-key-file="+key,
		"--client-ca-file="+c.pki.CAFile,
		"--kubelet-client-certificate="+kcrt, "--kubelet-client-key="+kkey,
		"--kubelet-preferred-address-types=InternalIP",
		"--authorization-mode=Node,RBAC",
		"--service-account-key-file="+c.pki.SAPub,
		"--service-account-signing-key-file="+c.pki.SAKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--allow-privileged=true",
		"--cert-dir="+filepath.Join(c.Dir, "apiserver"),
		"--profiling=false", "--v=1")...)
	if err != nil {
		return err
	}
	c.kubeconfig = admin
	return waitFor(ctx, startTimeout, 250*time.Millisecond, "kube-apiserver", func() error {
		if err := api.alive(); err != nil {
			return err
		}
		out, err := c.Kubectl(ctx, "get", "--raw", "/readyz")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "ok" {
			return fmt.Errorf("/readyz: %s", out)
		}
		return nil
	})
}

// startControllers starts kube-controller-manager and kube-scheduler.
func (c *Cluster) startControllers() error {
	kcm, err := c.pki.kubeconfig("kube-controller-manager", "system:kube-controller-manager")
	if err != nil {
		return err
	}
	sched, err := c.pki.kubeconfig("kube-scheduler", "system:kube-scheduler")
	if err != nil {
		return err
	}
	if _, err := c.startProc("kube-controller-manager", append(c.inCP(), filepath.Join(c.Bin, "kube-controller-manager"),
		"--kubeconfig="+kcm, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--cert-dir="+filepath.Join(c.Dir, "kcm"),
		"--service-account-private-key-file="+c.pki.SAKey,
		"--root-ca-file="+c.pki.CAFile,
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--profiling=false", "--v=1")...); err != nil {
		return err
	}
	_, err = c.startProc("kube-scheduler", append(c.inCP(), filepath.Join(c.Bin, "kube-scheduler"),
		"--kubeconfig="+sched, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--cert-dir="+filepath.Join(c.Dir, "scheduler"), "--v=1")...)
	return err
}

// Kubectl runs kubectl as the cluster's admin (from the control plane's
// netns) and returns its stdout.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlIn(ctx, nil, args...)
}

// KubectlIn is Kubectl with stdin (for `apply -f -`).
func (c *Cluster) KubectlIn(ctx context.Context, stdin []byte, args ...string) (string, error) {
	argv := append(c.inCP(), filepath.Join(c.Bin, "kubectl"), "--kubeconfig="+c.kubeconfig, "--cache-dir="+filepath.Join(c.Dir, "kubectl-cache"), "--request-timeout=60s")
	return run(ctx, stdin, append(argv, args...)...)
}

// KubeconfigPath is the admin kubeconfig (the apiserver is reachable only
// from the control plane's netns).
func (c *Cluster) KubeconfigPath() string { return c.kubeconfig }

// writeFile writes a file and its directory.
func writeFile(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
