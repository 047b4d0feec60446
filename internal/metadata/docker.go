package metadata

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
)

// DefaultDockerTimeout bounds a DockerSource lookup whose ctx has no deadline.
const DefaultDockerTimeout = 10 * time.Second

// DockerSource reads a pod's metadata from the labels of its sandbox
// container (the container whose ID is Query.ContainerID) through the Docker
// Engine API.
type DockerSource struct {
	host string
	cli  *client.Client
}

var _ Source = (*DockerSource)(nil)

// NewDockerSource returns a source that asks the Docker daemon at host
// ("unix:///var/run/docker.sock"; "" means the client's default). It
// connects lazily and negotiates the API version with the daemon.
func NewDockerSource(host string) (*DockerSource, error) {
	if host == "" {
		host = client.DefaultDockerHost
	}
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", host, err)
	}
	return &DockerSource{host: host, cli: cli}, nil
}

// Name returns "docker".
func (d *DockerSource) Name() string { return "docker" }

// Host returns the daemon address the source asks.
func (d *DockerSource) Host() string { return d.host }

// Labels returns the container's `ratchet` and `ratchet.*` labels. No such
// container, or one without such labels, is ErrNoMetadata; a daemon that
// cannot be reached (or does not answer before the deadline) is
// ErrSourceUnavailable. Without a deadline in ctx, DefaultDockerTimeout
// applies.
func (d *DockerSource) Labels(ctx context.Context, q Query) (map[string]string, error) {
	if !validContainerID(q.ContainerID) {
		return nil, fmt.Errorf("container ID %q: %w", q.ContainerID, ErrNoMetadata)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultDockerTimeout)
		defer cancel()
	}
	info, err := d.cli.ContainerInspect(ctx, q.ContainerID)
	switch {
	case err == nil:
	case cerrdefs.IsNotFound(err):
		return nil, fmt.Errorf("container %s at docker %s: %w", q.ContainerID, d.host, ErrNoMetadata)
	case client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded):
		return nil, Unavailable("docker at "+d.host, err)
	default:
		return nil, fmt.Errorf("inspect container %s at docker %s: %w", q.ContainerID, d.host, err)
	}
	var labels map[string]string
	if info.Config != nil {
		labels = ratchetLabels(info.Config.Labels)
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("container %s has no ratchet labels: %w", q.ContainerID, ErrNoMetadata)
	}
	return labels, nil
}

// Close releases the client's idle connections.
func (d *DockerSource) Close() error {
	return d.cli.Close()
}

// ratchetLabels keeps the `ratchet` and `ratchet.*` labels.
func ratchetLabels(all map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range all {
		if k == KeyRatchet || strings.HasPrefix(k, KeyRatchet+".") {
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
