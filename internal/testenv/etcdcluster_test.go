package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// v2Set writes key through member url's v2 API and returns an error unless
// it was stored.
func v2Set(base, key, value string) error {
	req, err := http.NewRequest(http.MethodPut, base+"/v2/keys"+key, strings.NewReader(url.Values{"value": {value}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("v2 set %s at %s: %s", key, base, resp.Status)
	}
	return nil
}

// v2Get reads key through member url's v2 API with a quorum read.
func v2Get(base, key string) (string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/v2/keys" + key + "?quorum=true")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Node struct{ Value string } `json:"node"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("v2 get %s at %s: %s: %w", key, base, resp.Status, err)
	}
	return body.Node.Value, nil
}

func TestEtcdClusterServesWithOneMemberStopped(t *testing.T) {
	RequireRoot(t)
	c := StartEtcdCluster(t, 3)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.URLs, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lead := c.Leader()
	if lead < 0 {
		t.Fatal("no leader")
	}
	c.Stop(lead)
	other := (lead + 1) % 3
	if _, err := cli.Put(ctx, "/k3", "v3"); err != nil {
		t.Fatalf("v3 put with member %d stopped: %v", lead, err)
	}
	if err := v2Set(c.URLs[other], "/k2", "v2"); err != nil {
		t.Fatalf("v2 set with member %d stopped: %v", lead, err)
	}
	c.Restart(lead)
	if v, err := v2Get(c.URLs[lead], "/k2"); err != nil || v != "v2" {
		t.Errorf("restarted member %d: v2 /k2 = %q, %v", lead, v, err)
	}
	one, err := clientv3.New(clientv3.Config{Endpoints: c.URLs[lead : lead+1], DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	resp, err := one.Get(ctx, "/k3")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v3" {
		t.Errorf("restarted member %d: v3 /k3 = %v, %v", lead, resp, err)
	}
}
