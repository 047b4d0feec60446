package store_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"

	"github.com/ratchet-cni/ratchet/internal/metadata"
)

func TestRecordsRoundTripThroughJSON(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	records := []any{
		&store.PodRecord{Namespace: "default", Name: "a", ContainerID: "c1", Netns: "/var/run/netns/x",
			IfName: "eth0", Host: "node1", HostAddress: "10.0.0.1", Created: now,
			Pod: metadata.Pod{Name: "a", Namespace: "default", Primary: true,
				Links: []metadata.Link{{Peer: "b", IfName: "in1", IP: "192.168.2.1/24", PeerIfName: "in2", PeerIP: "192.168.2.2/24"}}}},
		&store.LinkRecord{ID: "a.in1--b.in2", Namespace: "default", MTU: 1450, VNI: 4097, State: store.LinkFailed,
			Reason: "peer host unknown", Updated: now, Declarer: "a",
			A: store.LinkEnd{Pod: "a", IfName: "in1", IP: "192.168.2.1/24", ContainerID: "c1", Host: "node1", Up: true},
			B: store.LinkEnd{Pod: "b", IfName: "in2"}},
		&store.AgentRecord{Host: "node1", Address: "198.51.100.1", Version: "v1", PID: 4242, Started: now, Pods: 2},
		&map[string]string{metadata.KeyRatchet: "true", metadata.KeyPodName: "a"},
	}
	for _, rec := range records {
		b, err := store.Encode(rec)
		mustOK(t, "encode", err)
		got := reflect.New(reflect.TypeOf(rec).Elem()).Interface()
		mustOK(t, "decode", store.Decode(store.KV{Key: "/k", Value: b}, got))
		if !reflect.DeepEqual(got, rec) {
			t.Errorf("round trip of %T:\n got %+v\nwant %+v", rec, got, rec)
		}
	}
}

func TestLinkRecordJSONFieldNames(t *testing.T) {
	b, err := store.Encode(store.LinkRecord{ID: "a.x--b.y", State: store.LinkPending, A: store.LinkEnd{Pod: "a", IfName: "x"}})
	mustOK(t, "encode", err)
	var m map[string]any
	mustOK(t, "unmarshal", json.Unmarshal(b, &m))
	for _, key := range []string{"id", "namespace", "a", "b", "state", "updated", "declarer"} {
		if _, ok := m[key]; !ok {
			t.Errorf("field %q missing from %s", key, b)
		}
	}
	if m["state"] != "pending" {
		t.Errorf("state = %v, want pending", m["state"])
	}
}

func TestDecodeErrorNamesKey(t *testing.T) {
	var rec store.PodRecord
	err := store.Decode(store.KV{Key: "/ratchet/pods/default/a", Value: []byte("{not json")}, &rec)
	if err == nil || !strings.Contains(err.Error(), "/ratchet/pods/default/a") {
		t.Fatalf("decode error %v does not name the key", err)
	}
}
