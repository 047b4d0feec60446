// Package dockermeta is the "docker" metadata source: it reads a pod's
// ratchet labels from its sandbox container through the Docker Engine API.
// It is kept apart from package metadata so that only the binaries that ask
// Docker link the Docker client.
package dockermeta

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/ratchet-cni/ratchet/internal/metadata"
)

// DefaultTimeout bounds a lookup whose ctx has no deadline.
const DefaultTimeout = 10 * time.Second

// Source reads a pod's metadata from the labels of its sandbox container
// (the container whose ID is Query.ContainerID).
type Source struct {
	host string
	// socket is the path of a unix:// host, "" for other transports.
	socket string
	cli    *client.Client
}

var _ metadata.Source = (*Source)(nil)

// New returns a source that asks the Docker daemon at host
// ("unix:///var/run/docker.sock"; "" means the client's default). It
// connects lazily and negotiates the API version with the daemon.
func New(host string) (*Source, error) {
	if host == "" {
		host = client.DefaultDockerHost
	}
	cli, err := client.New(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", host, err)
	}
	s := &Source{host: host, cli: cli}
	if u, err := url.Parse(host); err == nil && u.Scheme == "unix" {
		s.socket = u.Path
	}
	return s, nil
}

// Name returns "docker".
func (d *Source) Name() string { return "docker" }

// Host returns the daemon address the source asks.
func (d *Source) Host() string { return d.host }

// Labels returns the container's `ratchet` and `ratchet.*` labels. No such
// container, one without such labels, or no Docker socket on this host at
// all is metadata.ErrNoMetadata; a daemon that cannot be reached (or does
// not answer before the deadline) is metadata.ErrSourceUnavailable. Without
// a deadline in ctx, DefaultTimeout applies.
func (d *Source) Labels(ctx context.Context, q metadata.Query) (map[string]string, error) {
	if !validContainerID(q.ContainerID) {
		return nil, fmt.Errorf("container ID %q: %w", q.ContainerID, metadata.ErrNoMetadata)
	}
	if d.socket != "" {
		if _, err := os.Stat(d.socket); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no docker socket at %s: %w", d.socket, metadata.ErrNoMetadata)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	res, err := d.cli.ContainerInspect(ctx, q.ContainerID, client.ContainerInspectOptions{})
	switch {
	case err == nil:
	case cerrdefs.IsNotFound(err):
		return nil, fmt.Errorf("container %s at docker %s: %w", q.ContainerID, d.host, metadata.ErrNoMetadata)
	case client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded):
		return nil, metadata.Unavailable("docker at "+d.host, err)
	default:
		return nil, fmt.Errorf("inspect container %s at docker %s: %w", q.ContainerID, d.host, err)
	}
	var labels map[string]string
	if res.Container.Config != nil {
		labels = ratchetLabels(res.Container.Config.Labels)
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("container %s has no ratchet labels: %w", q.ContainerID, metadata.ErrNoMetadata)
	}
	return labels, nil
}

// Close releases the client's idle connections.
func (d *Source) Close() error {
	return d.cli.Close()
}

// ratchetLabels keeps the `ratchet` and `ratchet.*` labels.
func ratchetLabels(all map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range all {
		if k == metadata.KeyRatchet || strings.HasPrefix(k, metadata.KeyRatchet+".") {
			m[k] = v
		}
	}
	return m
}

// validContainerID reports whether id can name a Docker container (an ID or
// a name: [a-zA-Z0-9][a-zA-Z0-9_.-]*); anything else cannot exist, and must
// not reach the API's URL path.
func validContainerID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}
