package k8s

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/k8senv"
)

// Helpers of the Kubernetes-native steps (native_test.go).

// kubectlErr runs kubectl and returns its error instead of failing.
func (e *env) kubectlErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := e.ctx(2 * time.Minute)
	defer cancel()
	return e.c.Kubectl(ctx, args...)
}

// deleteQuietly deletes objects of one kind by name, ignoring those that
// are gone already, and waits for them to go (a step's cleanup).
func (e *env) deleteQuietly(t *testing.T, kind string, names ...string) {
	t.Helper()
	args := append([]string{"delete", kind, "--ignore-not-found", "--wait=true", "--timeout=120s", "--grace-period=1"}, names...)
	if out, err := e.kubectlErr(t, args...); err != nil {
		t.Errorf("cleanup: kubectl %v: %v\n%s", args, err, out)
	}
}

// podSpecFor is a busybox pod spec that sleeps, pinned to a node, ended
// at once on deletion.
func podSpecFor(node string) map[string]any {
	return map[string]any{
		"nodeName":                      node,
		"terminationGracePeriodSeconds": 1,
		"containers": []any{map[string]any{
			"name":            "main",
			"image":           k8senv.BusyboxImage,
			"imagePullPolicy": "IfNotPresent",
			"command":         []any{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"},
		}},
	}
}

// applyObject applies one object given as a map.
func (e *env) applyObject(t *testing.T, obj map[string]any) {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := e.ctx(2 * time.Minute)
	defer cancel()
	if out, err := e.c.KubectlIn(ctx, b, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply %s: %v\n%s", b, err, out)
	}
}

// runPod creates a busybox pod on a node with labels and annotations.
func (e *env) runPod(t *testing.T, name, node string, labels, annotations map[string]string) {
	t.Helper()
	meta := map[string]any{"name": name, "namespace": "default"}
	if labels != nil {
		meta["labels"] = labels
	}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	e.applyObject(t, map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": podSpecFor(node)})
}

// waitExists waits until a pod exists (a workload's pod, made by its
// controller).
func (e *env) waitExists(t *testing.T, pod string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := e.kubectlErr(t, "get", "pod", pod); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not created", pod)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// uid is a pod's UID.
func (e *env) uid(t *testing.T, pod string) string {
	t.Helper()
	return e.kubectl(t, "get", "pod", pod, "-o", "jsonpath={.metadata.uid}")
}

// restarts is the sum of a pod's containers' restart counts.
func (e *env) restarts(t *testing.T, pod string) int {
	t.Helper()
	sum := 0
	for _, f := range strings.Fields(e.kubectl(t, "get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[*].restartCount}")) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pod %s: restart count %q: %v", pod, f, err)
		}
		sum += n
	}
	return sum
}

// waitLinks polls `ratchetctl status` until done says the links are as
// wanted, and fails the test with the last reason and ratchet's logs at
// the deadline.
func (e *env) waitLinks(t *testing.T, timeout time.Duration, done func(status) string) status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := e.status(t)
		why := done(s)
		if why == "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s\n%s", timeout, why, e.ratchetLogs())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitWired waits until every link of ids is wired with both ends up.
func (e *env) waitWired(t *testing.T, timeout time.Duration, ids ...string) status {
	t.Helper()
	return e.waitLinks(t, timeout, func(s status) string {
		var bad []string
		for _, id := range ids {
			i := slices.IndexFunc(s.Links, func(l statusLink) bool { return l.ID == id })
			switch {
			case i < 0:
				bad = append(bad, id+": absent")
			case s.Links[i].State != "wired" || !s.Links[i].A.Up || !s.Links[i].B.Up:
				l := s.Links[i]
				bad = append(bad, fmt.Sprintf("%s: %s %s (ends up: %v/%v)", id, l.State, l.Reason, l.A.Up, l.B.Up))
			}
		}
		if len(bad) > 0 {
			return fmt.Sprintf("links not wired: %v", bad)
		}
		return ""
	})
}

// waitNoLink waits until ratchetctl shows none of the links.
func (e *env) waitNoLink(t *testing.T, timeout time.Duration, ids ...string) {
	t.Helper()
	e.waitLinks(t, timeout, func(s status) string {
		for _, l := range s.Links {
			if slices.Contains(ids, l.ID) {
				return fmt.Sprintf("link %s still there: %s %s", l.ID, l.State, l.Reason)
			}
		}
		return ""
	})
}

// statusLink is one link of `ratchetctl status -o json`.
type statusLink = struct {
	ID, State, Kind, Reason string
	VNI                     uint32
	A, B                    struct {
		Pod, IfName, Host string
		Up                bool
	}
}

// execIn runs a command in one container of a pod.
func (e *env) execIn(pod, container string, argv ...string) (string, error) {
	ctx, cancel := e.ctx(time.Minute)
	defer cancel()
	args := []string{"exec", pod}
	if container != "" {
		args = append(args, "-c", container)
	}
	return e.c.Kubectl(ctx, append(append(args, "--"), argv...)...)
}

// pingEventually pings addr from pod until an answer comes (routes set by
// the pods' own scripts may lag the link by a second), for up to 30 s.
func (e *env) pingEventually(t *testing.T, pod, addr string) {
	t.Helper()
	e.pingEventuallyIn(t, pod, "", addr)
}

// pingEventuallyIn is pingEventually in one container of the pod.
func (e *env) pingEventuallyIn(t *testing.T, pod, container, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := e.execIn(pod, container, "ping", "-c", "3", "-i", "0.2", "-W", "2", addr)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("ping %s from %s: %v\n%s", addr, pod, err, out)
			return
		}
		time.Sleep(time.Second)
	}
}

// waitAddr waits until the pod's interface holds the address (a CIDR).
func (e *env) waitAddr(t *testing.T, pod, ifname, cidr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := e.exec(pod, "ip", "-o", "-4", "addr", "show", "dev", ifname)
		if err == nil && strings.Contains(out, " "+cidr+" ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: %s does not hold %s after %v: %v\n%s\n%s", pod, ifname, cidr, timeout, err, out, e.ratchetLogs())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitNoIface waits until the pod has no interface of that name.
func (e *env) waitNoIface(t *testing.T, pod, ifname string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := e.exec(pod, "sh", "-c", "test -e /sys/class/net/"+ifname+" && echo present || echo absent")
		if err == nil && strings.TrimSpace(out) == "absent" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: %s still there after %v: %v %s\n%s", pod, ifname, timeout, err, out, e.ratchetLogs())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkMTU checks an interface's MTU in a pod.
func (e *env) checkMTU(t *testing.T, pod, ifname string, mtu int) {
	t.Helper()
	out, err := e.exec(pod, "cat", "/sys/class/net/"+ifname+"/mtu")
	if err != nil || strings.TrimSpace(out) != strconv.Itoa(mtu) {
		t.Errorf("pod %s: %s MTU %q (%v), want %d", pod, ifname, strings.TrimSpace(out), err, mtu)
	}
}

// event is what the steps read of a Kubernetes Event.
type event struct {
	Type, Reason, Message string
	InvolvedObject        struct{ Kind, Name string }
}

// events are the Events about a pod, as `kubectl get events
// --field-selector involvedObject.name=<pod>` shows them.
func (e *env) events(t *testing.T, pod string) []event {
	t.Helper()
	var list struct{ Items []event }
	out := e.kubectl(t, "get", "events", "--field-selector", "involvedObject.name="+pod, "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("events of %s: %v\n%s", pod, err, out)
	}
	return list.Items
}

// wantEventTypes are the Event types of ratchet's reasons.
var wantEventTypes = map[string]string{"LinkWired": "Normal", "LinkRemoved": "Normal", "LinkFailed": "Warning"}

// waitEvent waits up to 30 s for an Event of that reason on the pod whose
// message names the link, and checks its type.
func (e *env) waitEvent(t *testing.T, pod, reason, link string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs := e.events(t, pod)
		for _, ev := range evs {
			if ev.Reason == reason && strings.Contains(ev.Message, link) && ev.InvolvedObject.Kind == "Pod" {
				if ev.Type != wantEventTypes[reason] {
					t.Errorf("pod %s: event %s of type %s, want %s", pod, reason, ev.Type, wantEventTypes[reason])
				}
				t.Logf("pod %s: event %s %s: %s", pod, ev.Type, ev.Reason, ev.Message)
				return
			}
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, ev := range evs {
				seen = append(seen, ev.Type+" "+ev.Reason+": "+ev.Message)
			}
			t.Errorf("pod %s: no %s event naming %s; events:\n%s", pod, reason, link, strings.Join(seen, "\n"))
			return
		}
		time.Sleep(time.Second)
	}
}
