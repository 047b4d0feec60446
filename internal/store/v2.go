package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"syscall"
	"time"

	client "go.etcd.io/etcd/client/v2"
)

// v2Store is the Store on the etcd v2 keys API (go.etcd.io/etcd/client/v2):
// keys are paths in a tree of directories; CAS uses PrevExist/PrevIndex.
type v2Store struct {
	cfg  Config
	kapi client.KeysAPI
	tr   *http.Transport
	// ctx ends when the store is closed; watches derive from it and
	// Close waits for them (watches) before closing idle connections.
	ctx     context.Context
	cancel  context.CancelFunc
	watches sync.WaitGroup
}

var _ Store = (*v2Store)(nil)

func newV2(cfg Config) (*v2Store, error) {
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	tr := httpTransport(tc, cfg.Timeout)
	c, err := client.New(client.Config{
		Endpoints:               cfg.Endpoints,
		Transport:               tr,
		Username:                cfg.Username,
		Password:                cfg.Password,
		HeaderTimeoutPerRequest: cfg.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd v2 client for %v: %w", cfg.Endpoints, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &v2Store{cfg: cfg, kapi: client.NewKeysAPI(c), tr: tr, ctx: ctx, cancel: cancel}, nil
}

// mapErr turns a v2 client error into the package's sentinels.
func (s *v2Store) mapErr(err error) error {
	var ee client.Error
	if errors.As(err, &ee) {
		switch ee.Code {
		case client.ErrorCodeKeyNotFound:
			return ErrNotFound
		case client.ErrorCodeTestFailed:
			return ErrConflict
		case client.ErrorCodeNodeExist:
			return ErrExists
		case client.ErrorCodeUnauthorized:
			return fmt.Errorf("%w (user %q): %w", ErrAuth, s.cfg.Username, err)
		case client.ErrorCodeRaftInternal, client.ErrorCodeLeaderElect:
			return unavailable(s.cfg.Endpoints, err)
		case client.ErrorCodeEventIndexCleared:
			return fmt.Errorf("%w: %w", ErrCompacted, err)
		}
		return err
	}
	var ce *client.ClusterError
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, client.ErrInvalidJSON):
		return s.notServed()
	case errors.As(err, &ce):
		cause := errors.Join(ce.Errors...)
		if isTLSProblem(cause) {
			return tlsFailure(s.cfg.Endpoints, cause)
		}
		return unavailable(s.cfg.Endpoints, cause)
	case isTLSProblem(err):
		return tlsFailure(s.cfg.Endpoints, err)
	}
	var ne net.Error
	// A connection cut mid-request (etcd killed) surfaces as a bare EOF or
	// reset: the server is unavailable, not the request wrong.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) {
		return unavailable(s.cfg.Endpoints, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) ||
		errors.Is(err, client.ErrNoEndpoints) || errors.Is(err, client.ErrNoLeaderEndpoint) ||
		errors.Is(err, client.ErrClusterUnavailable) {
		return unavailable(s.cfg.Endpoints, err)
	}
	return err
}

// notServed is the error for an endpoint whose /v2/keys does not answer
// like etcd v2: it names the server's version when /version answers.
func (s *v2Store) notServed() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	detail := ""
	if v, _ := serverVersion(ctx, s.tr, s.cfg.Endpoints[0]); v != "" {
		detail = "etcd " + v
	}
	return apiNotServed(s.cfg.Endpoints, APIv2, detail)
}

func (s *v2Store) wrap(op, key string, err error) error {
	return fmt.Errorf("%s %s: %w", op, key, s.mapErr(err))
}

func (s *v2Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

func kvOf(n *client.Node) KV {
	return KV{Key: n.Key, Value: []byte(n.Value), Version: int64(n.ModifiedIndex)}
}

// Get implements Store. A directory is not a key: ErrNotFound.
func (s *v2Store) Get(ctx context.Context, key string) (KV, error) {
	if err := checkKey(s.cfg.Prefix, key); err != nil {
		return KV{}, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.kapi.Get(ctx, key, &client.GetOptions{Quorum: true})
	if err != nil {
		return KV{}, s.wrap("get", key, err)
	}
	if resp.Node.Dir {
		return KV{}, fmt.Errorf("get %s: is a directory: %w", key, ErrNotFound)
	}
	return kvOf(resp.Node), nil
}

// List implements Store with a recursive Get flattened to the leaves.
func (s *v2Store) List(ctx context.Context, dir string) ([]KV, int64, error) {
	if err := checkKey(s.cfg.Prefix, dir); err != nil {
		return nil, 0, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.kapi.Get(ctx, dir, &client.GetOptions{Recursive: true, Sort: true, Quorum: true})
	var ee client.Error
	if errors.As(err, &ee) && ee.Code == client.ErrorCodeKeyNotFound {
		return nil, int64(ee.Index), nil
	}
	if err != nil {
		return nil, 0, s.wrap("list", dir, err)
	}
	var kvs []KV
	if resp.Node.Dir {
		kvs = leaves(resp.Node, kvs)
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	return kvs, int64(resp.Index), nil
}

func leaves(n *client.Node, out []KV) []KV {
	for _, c := range n.Nodes {
		if c.Dir {
			out = leaves(c, out)
		} else {
			out = append(out, kvOf(c))
		}
	}
	return out
}

func (s *v2Store) set(ctx context.Context, op, key string, val []byte, opts *client.SetOptions) (KV, error) {
	if err := checkKey(s.cfg.Prefix, key); err != nil {
		return KV{}, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.kapi.Set(ctx, key, string(val), opts)
	if err != nil {
		return KV{}, s.wrap(op, key, err)
	}
	return KV{Key: resp.Node.Key, Value: val, Version: int64(resp.Node.ModifiedIndex)}, nil
}

// Create implements Store with Set(PrevExist=false, TTL).
func (s *v2Store) Create(ctx context.Context, key string, val []byte, ttl time.Duration) (KV, error) {
	opts := &client.SetOptions{PrevExist: client.PrevNoExist}
	if ttl > 0 {
		opts.TTL = time.Duration(ttlSeconds(ttl)) * time.Second
	}
	return s.set(ctx, "create", key, val, opts)
}

// Update implements Store with Set(PrevExist=true, PrevIndex=version).
func (s *v2Store) Update(ctx context.Context, key string, val []byte, version int64) (KV, error) {
	if version <= 0 {
		return KV{}, fmt.Errorf("update %s: invalid version %d", key, version)
	}
	opts := &client.SetOptions{PrevExist: client.PrevExist, PrevIndex: uint64(version)}
	return s.set(ctx, "update", key, val, opts)
}

// Put implements Store with an unconditional Set.
func (s *v2Store) Put(ctx context.Context, key string, val []byte) (KV, error) {
	return s.set(ctx, "put", key, val, nil)
}

// Delete implements Store with Delete(PrevIndex=version).
func (s *v2Store) Delete(ctx context.Context, key string, version int64) error {
	if err := checkKey(s.cfg.Prefix, key); err != nil {
		return err
	}
	if version < 0 {
		return fmt.Errorf("delete %s: invalid version %d", key, version)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.kapi.Delete(ctx, key, &client.DeleteOptions{PrevIndex: uint64(version)})
	if err != nil {
		return s.wrap("delete", key, err)
	}
	return nil
}

// DeleteDir implements Store with a recursive directory delete.
func (s *v2Store) DeleteDir(ctx context.Context, dir string) error {
	if err := checkKey(s.cfg.Prefix, dir); err != nil {
		return err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.kapi.Delete(ctx, dir, &client.DeleteOptions{Recursive: true, Dir: true})
	if err != nil && !errors.Is(s.mapErr(err), ErrNotFound) {
		return s.wrap("delete dir", dir, err)
	}
	return nil
}

// Ping implements Store: a quorum read of the prefix through the keys API,
// so that an etcd without v2 fails here.
func (s *v2Store) Ping(ctx context.Context) error {
	key := s.cfg.Prefix
	if key == "" {
		key = "/"
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.kapi.Get(ctx, key, &client.GetOptions{Quorum: true})
	if err != nil && !errors.Is(s.mapErr(err), ErrNotFound) {
		return s.wrap("ping", key, err)
	}
	return nil
}

// Close implements Store: watches end and idle connections close.
func (s *v2Store) Close() error {
	s.cancel()
	s.watches.Wait()
	s.tr.CloseIdleConnections()
	return nil
}
