package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// v3Store is the Store on the etcd v3 API (go.etcd.io/etcd/client/v3): a
// flat keyspace where a directory is a key prefix ending in "/"; CAS uses
// transactions comparing ModRevision/CreateRevision.
type v3Store struct {
	cfg Config
	cli *clientv3.Client
	tr  *http.Transport // for the /version probe

	probeOnce sync.Once
	probeErr  error // ErrAPINotServed when the endpoint is an etcd 2
}

var _ Store = (*v3Store)(nil)

func newV3(cfg Config) (*v3Store, error) {
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &v3Store{cfg: cfg, tr: httpTransport(tc, cfg.Timeout)}
	s.cli, err = clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.Timeout,
		TLS:         tc,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Logger:      zap.NewNop(), // never write to the plugin's stderr
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second,
			},
			MinConnectTimeout: cfg.Timeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd v3 client: %w", s.mapErr(err))
	}
	return s, nil
}

// grpcCode is the gRPC code of a v3 client error, codes.Unknown if none.
func grpcCode(err error) codes.Code {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code()
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return codes.Unknown
}

// mapErr turns a v3 client error into the package's sentinels.
func (s *v3Store) mapErr(err error) error {
	code := grpcCode(err)
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("%w: %w", ErrCompacted, err)
	case errors.Is(err, context.DeadlineExceeded), code == codes.Unavailable, code == codes.DeadlineExceeded:
		if perr := s.probe(); perr != nil {
			return perr
		}
		return unavailable(s.cfg.Endpoints, err)
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrUserEmpty),
		code == codes.PermissionDenied, code == codes.Unauthenticated:
		return fmt.Errorf("%w at %s (user %q): %w", ErrAuth, strings.Join(s.cfg.Endpoints, ","), s.cfg.Username, err)
	}
	return err
}

// probe asks /version, once per store, why an endpoint does not answer
// gRPC: it is an etcd 2 (v2 API only), or TLS fails. nil: it is just down.
func (s *v3Store) probe() error {
	s.probeOnce.Do(func() {
		wait := min(s.cfg.Timeout/2, time.Second)
		for _, ep := range s.cfg.Endpoints {
			if !strings.Contains(ep, "://") {
				ep = "http://" + ep
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			v, err := serverVersion(ctx, s.tr, ep)
			cancel()
			switch {
			case strings.HasPrefix(v, "2."):
				s.probeErr = apiNotServed(s.cfg.Endpoints, APIv3, "etcd "+v)
				return
			case isTLSProblem(err):
				s.probeErr = tlsFailure(s.cfg.Endpoints, err)
				return
			}
		}
	})
	return s.probeErr
}

func (s *v3Store) wrap(op, key string, err error) error {
	return fmt.Errorf("%s %s: %w", op, key, s.mapErr(err))
}

func (s *v3Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

func kvOf3(kv *mvccpb.KeyValue) KV {
	return KV{Key: string(kv.Key), Value: kv.Value, Version: kv.ModRevision}
}

// Get implements Store.
func (s *v3Store) Get(ctx context.Context, key string) (KV, error) {
	if err := checkKey(s.cfg.Prefix, key); err != nil {
		return KV{}, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return KV{}, s.wrap("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return KV{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return kvOf3(resp.Kvs[0]), nil
}

// List implements Store with a sorted prefix Get of dir + "/".
func (s *v3Store) List(ctx context.Context, dir string) ([]KV, int64, error) {
	if err := checkKey(s.cfg.Prefix, dir); err != nil {
		return nil, 0, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, dir+"/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, s.wrap("list", dir, err)
	}
	var kvs []KV
	for _, kv := range resp.Kvs {
		kvs = append(kvs, kvOf3(kv))
	}
	return kvs, resp.Header.Revision, nil
}

// Create implements Store: a transaction on CreateRevision == 0, the key
// attached to a fresh lease when ttl > 0.
func (s *v3Store) Create(ctx context.Context, key string, val []byte, ttl time.Duration) (KV, error) {
	if err := checkKey(s.cfg.Prefix, key); err != nil {
		return KV{}, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	var opts []clientv3.OpOption
	var lease clientv3.LeaseID
	if ttl > 0 {
		l, err := s.cli.Grant(ctx, ttlSeconds(ttl))
		if err != nil {
			return KV{}, s.wrap("create (lease)", key, err)
		}
		lease = l.ID
		opts = append(opts, clientv3.WithLease(lease))
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val), opts...)).
		Commit()
	if err == nil && !resp.Succeeded {
		err = ErrExists
	}
	if err != nil {
		if lease != 0 {
			_, _ = s.cli.Revoke(ctx, lease)
		}
		return KV{}, s.wrap("create", key, err)
	}
	return KV{Key: key, Value: val, Version: resp.Header.Revision}, nil
}

// casFailure tells, from the Else branch's count of key, why a transaction
// comparing ModRevision failed.
func casFailure(resp *clientv3.TxnResponse) error {
	if len(resp.Responses) > 0 && resp.Responses[0].GetResponseRange().GetCount() == 0 {
		return ErrNotFound
	}
	return ErrConflict
}

// Update implements Store: a transaction on ModRevision == version.
func (s *v3Store) Update(ctx context.Context, key string, val []byte, version int64) (KV, error) {
	if err := checkKey(s.cfg.Prefix, key); err != nil {
		return KV{}, err
	}
	if version <= 0 {
		return KV{}, fmt.Errorf("update %s: invalid version %d", key, version)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", version)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	if err == nil && !resp.Succeeded {
		err = casFailure(resp)
	}
	if err != nil {
		return KV{}, s.wrap("update", key, err)
	}
	s.revokeLeases(ctx, resp.Responses[0].GetResponsePut().GetPrevKv())
	return KV{Key: key, Value: val, Version: resp.Header.Revision}, nil
}

// Put implements Store.
func (s *v3Store) Put(ctx context.Context, key string, val []byte) (KV, error) {
	if err := checkKey(s.cfg.Prefix, key); err != nil {
		return KV{}, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Put(ctx, key, string(val), clientv3.WithPrevKV())
	if err != nil {
		return KV{}, s.wrap("put", key, err)
	}
	s.revokeLeases(ctx, resp.PrevKv)
	return KV{Key: key, Value: val, Version: resp.Header.Revision}, nil
}

// Delete implements Store: a plain delete for version 0, else a transaction
// on ModRevision == version.
func (s *v3Store) Delete(ctx context.Context, key string, version int64) error {
	if err := checkKey(s.cfg.Prefix, key); err != nil {
		return err
	}
	if version < 0 {
		return fmt.Errorf("delete %s: invalid version %d", key, version)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	if version == 0 {
		resp, err := s.cli.Delete(ctx, key, clientv3.WithPrevKV())
		if err == nil && resp.Deleted == 0 {
			err = ErrNotFound
		}
		if err != nil {
			return s.wrap("delete", key, err)
		}
		s.revokeLeases(ctx, resp.PrevKvs...)
		return nil
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", version)).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	if err == nil && !resp.Succeeded {
		err = casFailure(resp)
	}
	if err != nil {
		return s.wrap("delete", key, err)
	}
	s.revokeLeases(ctx, resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()...)
	return nil
}

// revokeLeases revokes the leases of keys that were just deleted or
// overwritten (an overwrite makes a key permanent). Each lease is the key's
// own (Create grants one per key), so nothing else goes with it; without
// this, every deleted TTL key would leave its lease in etcd until the TTL
// runs out. Revoking is best-effort: a lease that cannot be revoked now
// still expires with its TTL.
func (s *v3Store) revokeLeases(ctx context.Context, prev ...*mvccpb.KeyValue) {
	for _, kv := range prev {
		if kv != nil && kv.Lease != 0 {
			_, _ = s.cli.Revoke(ctx, clientv3.LeaseID(kv.Lease))
		}
	}
}

// DeleteDir implements Store with a prefix delete of dir + "/".
func (s *v3Store) DeleteDir(ctx context.Context, dir string) error {
	if err := checkKey(s.cfg.Prefix, dir); err != nil {
		return err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Delete(ctx, dir+"/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	if err != nil {
		return s.wrap("delete dir", dir, err)
	}
	s.revokeLeases(ctx, resp.PrevKvs...)
	return nil
}

// Watch implements Store with a prefix watch from afterRev+1. The client
// resumes the watch itself after an etcd restart.
func (s *v3Store) Watch(ctx context.Context, dir string, afterRev int64) <-chan Event {
	out := make(chan Event, 16)
	if err := checkKey(s.cfg.Prefix, dir); err != nil {
		out <- Event{Err: fmt.Errorf("watch: %w", err)}
		close(out)
		return out
	}
	ctx, cancel := context.WithCancel(ctx)
	if afterRev <= 0 {
		afterRev = s.revision(ctx, dir) // 0 if unreachable: from when it is reached
	}
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if afterRev > 0 {
		opts = append(opts, clientv3.WithRev(afterRev+1))
	}
	wch := s.cli.Watch(ctx, dir+"/", opts...)
	go func() {
		defer close(out)
		defer cancel()
		for wr := range wch {
			if err := wr.Err(); err != nil {
				if ctx.Err() == nil {
					send(ctx, out, Event{Err: s.wrap("watch", dir, err)})
				}
				return
			}
			for _, e := range wr.Events {
				ev := Event{Type: Put, KV: kvOf3(e.Kv)}
				if e.Type == clientv3.EventTypeDelete {
					ev = Event{Type: Delete, KV: KV{Key: string(e.Kv.Key), Version: e.Kv.ModRevision}}
				}
				if !send(ctx, out, ev) {
					return
				}
			}
		}
	}()
	return out
}

// revision returns the store's current revision, 0 if etcd does not answer.
func (s *v3Store) revision(ctx context.Context, dir string) int64 {
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, dir+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0
	}
	return resp.Header.Revision
}

// Ping implements Store: a one-key read below the prefix (allowed to a user
// whose role covers the prefix).
func (s *v3Store) Ping(ctx context.Context) error {
	key := s.cfg.Prefix + "/"
	ctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.cli.Get(ctx, key, clientv3.WithPrefix(), clientv3.WithLimit(1), clientv3.WithKeysOnly())
	if err != nil {
		return s.wrap("ping", key, err)
	}
	return nil
}

// Close implements Store: watches end.
func (s *v3Store) Close() error {
	err := s.cli.Close()
	s.tr.CloseIdleConnections()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd v3 client: %w", err)
	}
	return nil
}
