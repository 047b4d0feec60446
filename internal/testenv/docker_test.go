package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestDockerRunsContainerAndCleansUpEverything(t *testing.T) {
	RequireRoot(t)
	_, keyErr := os.Stat("/etc/docker/key.json")
	var d *Docker
	t.Run("run", func(t *testing.T) {
		d = StartDocker(t)
		label := filepath.Join(t.TempDir(), "x.label")
		if err := os.WriteFile(label, []byte("# c\nratchet=true\nratchet.pod_name=x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		id, pid := d.RunContainer(t, label)
		hostNS, _ := os.Readlink("/proc/self/ns/net")
		ctrNS, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"))
		if err != nil || ctrNS == hostNS {
			t.Fatalf("container netns %q (host %q): %v", ctrNS, hostNS, err)
		}
		got, err := d.Run(t, "inspect", "-f", `{{index .Config.Labels "ratchet.pod_name"}}`, id)
		if err != nil || got != "x" {
			t.Fatalf("label ratchet.pod_name = %q, %v; want x", got, err)
		}
		if out, err := d.Run(t, "exec", id, "ip", "-o", "link"); err != nil || !strings.Contains(out, "lo") {
			t.Fatalf("ip link in container: %q, %v", out, err)
		}
	})
	if d == nil {
		t.Fatal("no dockerd")
	}
	if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", d.dir, err)
	}
	if m := mountsUnder(d.dir); len(m) > 0 {
		t.Errorf("mounts left behind: %v", m)
	}
	if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", d.cgroupParent)); len(left) > 0 {
		t.Errorf("cgroups left behind: %v", left)
	}
	if _, err := os.Stat("/etc/docker/key.json"); err == nil && keyErr != nil {
		t.Errorf("/etc/docker/key.json exists (dockerd ignored the key path?)")
	}
	select {
	case <-d.exited:
	default:
		t.Errorf("dockerd still running")
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`: "/tmp/a b",
		`/tmp/plain`:  "/tmp/plain",
		`/tmp/x\04`:   `/tmp/x\04`,
		`/tmp/\134`:   `/tmp/\`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}
