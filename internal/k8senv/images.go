package k8senv

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Image names. The manifests' own names are used where the image is what
// the manifest expects (busybox, pause, ratchet's image); only etcd's image
// differs (see the overlay in examples/README.md).
const (
	PauseImage   = "registry.k8s.io/pause:3.10"
	BusyboxImage = "busybox:1.36"
	EtcdImage    = "ratchet-test/etcd:" + EtcdVersion
)

// RatchetImages are the names ratchet's image is imported under: the
// manifests name the plugin's image and the announcer's separately.
var RatchetImages = []string{"ratchet/ratchet:latest", "ratchet/announcer:latest"}

// RatchetImageFiles are the files of ratchet's image: path in the image →
// binary in RatchetBin. Adding a binary to the image is one line here.
var RatchetImageFiles = [][2]string{
	{"/ratchet", "ratchet"},
	{"/ratchetd", "ratchetd"},
	{"/usr/local/bin/ratchet", "ratchet"},
	{"/usr/local/bin/ratchetd", "ratchetd"},
	{"/usr/local/bin/announcer", "announcer"},
	{"/usr/local/bin/ratchetctl", "ratchetctl"},
}

// RatchetPackages are built (static) into RatchetBin for the image and the
// nodes; the reference plugins are the versions pinned in go.mod.
var RatchetPackages = []string{
	"./ratchet", "./ratchetd", "./announcer", "./utils/ratchetctl",
	"github.com/containernetworking/plugins/plugins/main/bridge",
	"github.com/containernetworking/plugins/plugins/main/loopback",
	"github.com/containernetworking/plugins/plugins/ipam/host-local",
	"github.com/containernetworking/plugins/plugins/meta/portmap",
}

// busyboxPath is Debian's static busybox (package busybox-static).
const busyboxPath = "/bin/busybox"

// image is one image to build: names, extra files and entrypoint.
type image struct {
	names      []string
	files      [][2]string // path in image → host file
	entrypoint []string
	cmd        []string
}

// buildImages builds ratchet's binaries (static, for the busybox-based
// images and the nodes) and writes every image as a docker-archive tarball
// under Dir/images.
func (c *Cluster) buildImages(ctx context.Context) error {
	c.RatchetBin = filepath.Join(c.Dir, "bin")
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", c.RatchetBin + "/"}, RatchetPackages...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, out)
	}
	if err := copyFile(filepath.Join(c.Bin, "flannel"), filepath.Join(c.RatchetBin, "flannel"), 0o755); err != nil {
		return err
	}
	var ratchetFiles [][2]string
	for _, f := range RatchetImageFiles {
		ratchetFiles = append(ratchetFiles, [2]string{f[0], filepath.Join(c.RatchetBin, f[1])})
	}
	images := []image{
		{names: []string{PauseImage}, entrypoint: []string{"/bin/sleep", "2147483647"}},
		{names: []string{BusyboxImage}, cmd: []string{"sh"}},
		{names: RatchetImages, files: ratchetFiles, cmd: []string{"sh"}},
		{names: []string{EtcdImage}, files: [][2]string{{"/usr/local/bin/etcd", filepath.Join(c.Bin, "etcd")}}, cmd: []string{"etcd"}},
	}
	dir := filepath.Join(c.Dir, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, im := range images {
		if err := writeDockerArchive(filepath.Join(dir, fmt.Sprintf("%d.tar", i)), im); err != nil {
			return fmt.Errorf("image %v: %w", im.names, err)
		}
	}
	return nil
}

// importImages imports every image tarball into the node's containerd
// (namespace k8s.io, the CRI's).
func (c *Cluster) importImages(ctx context.Context, n *Node) error {
	tars, _ := filepath.Glob(filepath.Join(c.Dir, "images", "*.tar"))
	for _, f := range tars {
		if _, err := n.Exec(ctx, "ctr", "-a", containerdSock, "-n", "k8s.io", "images", "import", f); err != nil {
			return fmt.Errorf("import %s: %w", f, err)
		}
	}
	return nil
}

// writeDockerArchive writes a one-layer image in the docker-archive format
// (`docker save`'s, which `ctr images import` reads): busybox with its
// applets in /bin, the usual empty directories, and the image's files.
func writeDockerArchive(path string, im image) error {
	layer, err := os.CreateTemp(filepath.Dir(path), "layer-")
	if err != nil {
		return err
	}
	defer os.Remove(layer.Name())
	defer layer.Close()
	h := sha256.New()
	if err := writeRootfs(io.MultiWriter(layer, h), im.files); err != nil {
		return err
	}
	diffID := "sha256:" + hex.EncodeToString(h.Sum(nil))
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Env":        []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"},
			"Entrypoint": im.entrypoint,
			"Cmd":        im.cmd,
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": im.names, "Layers": []string{"layer.tar"}}})
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	for _, f := range []struct {
		name string
		data []byte
	}{{"config.json", config}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := addFile(tw, "layer.tar", layer.Name(), 0o644); err != nil {
		return err
	}
	return tw.Close()
}

// writeRootfs writes the layer: busybox, its applet links, directories and
// files (path in image → host file).
func writeRootfs(w io.Writer, files [][2]string) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "root", "run", "var", "usr", "usr/local", "usr/local/bin"} {
		dirs[d] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
			return err
		}
	}
	if err := addFile(tw, "bin/busybox", busyboxPath, 0o755); err != nil {
		return fmt.Errorf("busybox (apt-get install busybox-static): %w", err)
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	for _, f := range files {
		name := strings.TrimPrefix(f[0], "/")
		if d := filepath.Dir(name); d != "." && !dirs[d] {
			return fmt.Errorf("%s: directory %s not in the image", f[0], d)
		}
		if err := addFile(tw, name, f[1], 0o755); err != nil {
			return err
		}
	}
	return tw.Close()
}

// addFile writes the host file src into tw as name.
func addFile(tw *tar.Writer, name, src string, mode int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: st.Size()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// moduleRoot finds the directory holding go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}
