package wiring

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestRemoveLinksRemovesNamedAndTemporaryInOneBatch(t *testing.T) {
	a, b := testenv.NewNS(t), testenv.NewNS(t)
	ctx := context.Background()
	const n = 100
	var names []string
	for i := range n {
		name := fmt.Sprintf("l%d", i)
		names = append(names, name)
		if err := VethPair(ctx, Endpoint{Netns: a.Path(), Name: name}, Endpoint{Netns: b.Path(), Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	// A link left under a temporary name by an interrupted wiring, and one
	// that is not ours.
	a.MustExec(t, "ip", "link", "add", tempPrefix+"deadbeef0000", "type", "veth", "peer", "name", tempPrefix+"deadbeef0001")
	a.MustExec(t, "ip", "link", "add", "keepme", "type", "veth", "peer", "name", "keepme2")
	start := time.Now()
	removed, err := RemoveLinks(ctx, a.Path(), names)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("removed %d links in %v", removed, time.Since(start))
	if removed != n+2 {
		t.Errorf("removed %d, want %d", removed, n+2)
	}
	if got := a.Links(t); len(got) != 2 {
		t.Errorf("left in a: %v, want only keepme and keepme2", got)
	}
	if got := b.Links(t); len(got) != 0 {
		t.Errorf("peer ends left in b: %v", got)
	}
	if removed, err := RemoveLinks(ctx, a.Path(), names); err != nil || removed != 0 {
		t.Errorf("second RemoveLinks: %d, %v", removed, err)
	}
}

func TestRemoveLinksInDeletedNetnsSucceeds(t *testing.T) {
	if _, err := RemoveLinks(context.Background(), "/run/netns/no-such-netns-"+testenv.UniqueName(""), []string{"x"}); err != nil {
		t.Fatal(err)
	}
}
