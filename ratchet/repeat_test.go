package main

import (
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// A runtime that retries ADD for a live attachment gets an error, and the
// attachment is left as it was: its interfaces, its cache, a passing CHECK
// and a clean DEL.
func TestRepeatedAddLeavesTheLiveAttachmentWorking(t *testing.T) {
	f := newFixture(t)
	pod := testenv.NewNS(t)
	conf := f.cni.Conf(t, f.netconf("1.0.0", nil))
	rt := testenv.Runtime(testenv.UniqueName("c"), pod.Path(), "eth0")
	if _, err := f.add(conf, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	before := pod.MustExec(t, "ip", "-o", "addr", "show")
	_, err := f.add(conf, rt)
	if err == nil || !strings.Contains(err.Error(), "DEL it first") {
		t.Errorf("repeated ADD = %v, want the attachment-exists error", err)
	}
	if after := pod.MustExec(t, "ip", "-o", "addr", "show"); after != before {
		t.Errorf("the repeated ADD changed the pod:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := f.check(conf, rt); err != nil {
		t.Errorf("CHECK after the repeated ADD: %v", err)
	}
	if err := f.del(conf, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	f.assertClean(pod)
}
