package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Paths and names of the private dockerd.
const (
	// DockerdPath is Debian's dockerd (package docker.io).
	DockerdPath = "/usr/sbin/dockerd"
	// BusyboxPath is Debian's static busybox (package busybox-static).
	BusyboxPath = "/bin/busybox"
	// DockerImage is the busybox image imported into every private dockerd.
	DockerImage = "ratchet-busybox:test"
	// dockerStartTimeout bounds dockerd's start until /_ping answers.
	dockerStartTimeout = 30 * time.Second
	// dockerStopTimeout is how long dockerd gets after SIGTERM.
	dockerStopTimeout = 20 * time.Second
	// dockerCmdTimeout bounds one docker CLI command.
	dockerCmdTimeout = 2 * time.Minute
)

// dockerCLIPaths are where the docker CLI may be, in order of preference.
var dockerCLIPaths = []string{"/usr/bin/docker", "/usr/local/bin/docker"}

// hostRunDirs are the directories outside its roots that dockerd (plugins)
// and containerd (shim sockets) make whatever the flags, children first.
var hostRunDirs = []string{"/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd"}

// busyboxApplets are linked in the image when `busybox --list` fails.
var busyboxApplets = []string{"sh", "sleep", "ip", "ping", "ifconfig", "cat", "ls"}

// Docker is a private dockerd for one test: its own data and exec roots,
// socket and cgroup parent under a short temporary directory, no bridge and
// no iptables rules (the host's network is left alone). StartDocker removes
// all of it when the test ends.
type Docker struct {
	// Host is the daemon address, "unix:///tmp/rd-…/docker.sock".
	Host string
	// Image is an image with busybox (sh, sleep, ip, ping, … in /bin).
	Image string
	// StartTime is how long dockerd took to answer /_ping.
	StartTime time.Duration

	dir          string // short temp dir holding everything
	cli          string // docker CLI path
	cgroupParent string // name of the containers' parent cgroup
	cmd          *exec.Cmd
	exited       chan struct{} // closed when dockerd exited
	madeDirs     []string      // host dirs dockerd makes that did not exist before
}

// StartDocker starts a private dockerd, waits until it answers, imports
// Image into it, and stops and removes it (containers, processes, mounts,
// directories, cgroups) when the test ends.
func StartDocker(t testing.TB) *Docker {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat(DockerdPath); err != nil {
		t.Fatalf("dockerd not found at %s (apt-get install docker.io): %v", DockerdPath, err)
	}
	d := &Docker{Image: DockerImage, cli: dockerCLI(t), exited: make(chan struct{})}
	dir, err := os.MkdirTemp("/tmp", "rd-")
	if err != nil {
		t.Fatalf("docker dir: %v", err)
	}
	d.dir = dir
	d.Host = "unix://" + filepath.Join(dir, "docker.sock")
	d.cgroupParent = "ratchet-test-" + filepath.Base(dir)
	for _, p := range hostRunDirs {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			d.madeDirs = append(d.madeDirs, p)
		}
	}
	t.Cleanup(func() { d.cleanup(t) })
	start := time.Now()
	if err := d.start(); err != nil {
		t.Fatalf("start dockerd: %v\n%s", err, d.logTail())
	}
	if err := d.waitReady(dockerStartTimeout); err != nil {
		t.Fatalf("dockerd at %s: %v\n%s", d.Host, err, d.logTail())
	}
	d.StartTime = time.Since(start)
	t.Logf("dockerd at %s ready in %v", d.Host, d.StartTime.Round(time.Millisecond))
	if err := d.importImage(); err != nil {
		t.Fatalf("import %s: %v", d.Image, err)
	}
	return d
}

// dockerCLI returns the first docker CLI that exists.
func dockerCLI(t testing.TB) string {
	t.Helper()
	for _, p := range dockerCLIPaths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("docker CLI not found at %v (apt-get install docker.io)", dockerCLIPaths)
	return ""
}

func (d *Docker) start() error {
	for _, sub := range []string{"data", "exec", "cli"} {
		if err := os.Mkdir(filepath.Join(d.dir, sub), 0o700); err != nil {
			return err
		}
	}
	// The config file keeps dockerd off /etc/docker (daemon.json, key.json).
	config := fmt.Sprintf(`{"deprecated-key-path": %q}`, filepath.Join(d.dir, "key.json"))
	if err := os.WriteFile(filepath.Join(d.dir, "daemon.json"), []byte(config), 0o600); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(d.dir, "dockerd.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(DockerdPath,
		"--config-file", filepath.Join(d.dir, "daemon.json"),
		"--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "docker.pid"),
		"-H", d.Host,
		"--bridge=none", "--iptables=false", "--ip6tables=false",
		"--cgroup-parent", "/"+d.cgroupParent,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group (no terminal signals); killed if the test process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	d.cmd = cmd
	go func() { _ = cmd.Wait(); close(d.exited) }()
	return nil
}

// waitReady polls /_ping on the socket until it answers 200 OK.
func (d *Docker) waitReady(timeout time.Duration) error {
	sock := strings.TrimPrefix(d.Host, "unix://")
	hc := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := hc.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/_ping: %s", resp.Status)
		}
		select {
		case <-d.exited:
			return fmt.Errorf("dockerd exited: %v", d.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after %v: %w", timeout, err)
		}
	}
}

// importImage imports a one-file busybox image (plus applet symlinks).
func (d *Docker) importImage() error {
	rootfs, err := busyboxRootfs()
	if err != nil {
		return err
	}
	_, err = d.run(bytes.NewReader(rootfs), "import", "-", d.Image)
	return err
}

// busyboxRootfs returns a tar of /bin/busybox, its applet symlinks and the
// usual empty directories.
func busyboxRootfs() ([]byte, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox (apt-get install busybox-static): %w", err)
	}
	applets := busyboxApplets
	if out, err := exec.Command(BusyboxPath, "--list").Output(); err == nil {
		applets = strings.Fields(string(out))
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "root", "run"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		link := &tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}
		if err := tw.WriteHeader(link); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Run runs the docker CLI against this daemon and returns its stdout with
// surrounding whitespace trimmed; the error includes stderr.
func (d *Docker) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return d.run(nil, args...)
}

func (d *Docker) run(stdin *bytes.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, append([]string{"-H", d.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d.dir, "cli"))
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()),
			fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// RunContainer runs `sleep 100000` in a detached container of Image with no
// network (--net=none) and the labels of labelFile, and returns the
// container's ID and its init's PID (its netns is /proc/<pid>/ns/net).
func (d *Docker) RunContainer(t testing.TB, labelFile string) (containerID string, pid int) {
	t.Helper()
	id, err := d.Run(t, "run", "-d", "--net=none", "--label-file", labelFile, d.Image, "sleep", "100000")
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Run(t, "inspect", "-f", "{{.State.Pid}}", id)
	if err != nil {
		t.Fatal(err)
	}
	pid, err = strconv.Atoi(out)
	if err != nil || pid <= 0 {
		t.Fatalf("container %s: pid %q: %v", id, out, err)
	}
	return id, pid
}

// logTail returns the end of dockerd's log, for failure messages.
func (d *Docker) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "dockerd log (tail):\n" + string(b)
}

// cleanup removes everything StartDocker made, also after a partial start.
func (d *Docker) cleanup(t testing.TB) {
	if t.Failed() && d.cmd != nil {
		t.Log(d.logTail())
	}
	if d.cmd != nil {
		d.removeContainers(t)
		d.stop(t)
	}
	d.killStragglers(t)
	d.unmountAll(t)
	if err := os.RemoveAll(d.dir); err != nil {
		t.Errorf("remove %s: %v", d.dir, err)
	}
	d.removeCgroups(t)
	for _, p := range d.madeDirs {
		_ = os.Remove(p) // only when empty: another dockerd may use it
	}
}

func (d *Docker) removeContainers(t testing.TB) {
	select {
	case <-d.exited:
		return
	default:
	}
	out, err := d.run(nil, "ps", "-aq")
	if err != nil {
		t.Logf("list containers: %v", err)
		return
	}
	if ids := strings.Fields(out); len(ids) > 0 {
		if _, err := d.run(nil, append([]string{"rm", "-f", "-v"}, ids...)...); err != nil {
			t.Logf("remove containers: %v", err)
		}
	}
}

// stop sends SIGTERM to dockerd, then SIGKILL if it has not exited in time.
func (d *Docker) stop(t testing.TB) {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return
	case <-time.After(dockerStopTimeout):
	}
	t.Logf("dockerd did not stop %v after SIGTERM; killing it", dockerStopTimeout)
	_ = d.cmd.Process.Kill()
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("dockerd (pid %d) still running after SIGKILL", d.cmd.Process.Pid)
	}
}

// killStragglers kills what an unclean stop may leave: processes started with
// this daemon's paths (containerd, shims) and processes in its cgroups.
func (d *Docker) killStragglers(t testing.TB) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cgroup, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if bytes.Contains(cmdline, []byte(d.dir+"/")) || bytes.Contains(cgroup, []byte("/"+d.cgroupParent+"/")) {
			t.Logf("killing leftover process %d: %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountAll lazily unmounts every mount under the daemon's directory,
// deepest first (dockerd bind-mounts its data root, overlays, netns files).
func (d *Docker) unmountAll(t testing.TB) {
	for range 3 {
		mounts := mountsUnder(d.dir)
		if len(mounts) == 0 {
			return
		}
		for _, m := range mounts {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL {
				t.Logf("unmount %s: %v", m, err)
			}
		}
	}
	if left := mountsUnder(d.dir); len(left) > 0 {
		t.Errorf("mounts left under %s: %v", d.dir, left)
	}
}

// mountsUnder returns the mount points at or below dir, longest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroups removes the (empty) cgroups under the containers' parent
// cgroup in every hierarchy, children first.
func (d *Docker) removeCgroups(t testing.TB) {
	roots, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", d.cgroupParent))
	roots = append(roots, filepath.Join("/sys/fs/cgroup", d.cgroupParent))
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil {
				t.Errorf("remove cgroup %s: %v", dirs[i], err)
			}
		}
	}
}

// CLI is the path of the docker CLI the helpers use.
func (d *Docker) CLI() string { return d.cli }

// DeadDockerHost returns a unix:// Docker host whose socket file exists but
// has no listener: connecting is refused, as with a daemon that is down
// (unlike a missing socket, which means no Docker on the host).
func DeadDockerHost(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := l.Close(); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
	return "unix://" + path
}
