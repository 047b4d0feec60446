package pairing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/logging"
	"github.com/ratchet-cni/ratchet/internal/statefile"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// CompleterArg is the first argument with which the ratchet binary runs as
// a detached completer: `ratchet complete JOBFILE`.
const CompleterArg = "complete"

// Job is what a completer needs to finish a pod's pairing; ADD writes it to
// a file for the detached process.
type Job struct {
	Netconf     json.RawMessage `json:"netconf"`
	ContainerID string          `json:"containerID"`
	NetNS       string          `json:"netns"`
	IfName      string          `json:"ifname"`
	Args        string          `json:"args,omitempty"`
	Namespace   string          `json:"namespace"`
	Name        string          `json:"name"`
}

func jobPath(cniDir, containerID string) string {
	return filepath.Join(cniDir, "pairing", containerID+".job")
}

func (m *Manager) removeJob(containerID string) error {
	err := os.Remove(jobPath(m.conf.CNIDir, containerID))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove completer job: %w", err)
	}
	return nil
}

// ReadJob reads a completer's job file (never through a link).
func ReadJob(path string) (*Job, error) {
	data, err := statefile.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read completer job: %w", err)
	}
	job := &Job{}
	if err := json.Unmarshal(data, job); err != nil {
		return nil, fmt.Errorf("decode completer job %s: %w", path, err)
	}
	return job, nil
}

// spawnCompleter starts `ratchet complete JOBFILE` in its own session with
// stdin, stdout and stderr on /dev/null, so the runtime that ran ADD is not
// kept waiting, and does not wait for it.
func (m *Manager) spawnCompleter(job *Job) error {
	path := jobPath(m.conf.CNIDir, job.ContainerID)
	data, err := json.Marshal(job)
	if err != nil {
		return err
	}
	if err := statefile.WriteFile(filepath.Dir(path), filepath.Base(path), data); err != nil {
		return fmt.Errorf("write completer job: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	cmd := exec.Command(self, CompleterArg, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = completerEnv(os.Environ())
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", self, err)
	}
	m.log.Info("completer started", "completerPid", cmd.Process.Pid)
	return cmd.Process.Release()
}

// completerEnv drops the CNI_ variables: the completer is no CNI call.
func completerEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CNI_") {
			out = append(out, kv)
		}
	}
	return out
}

// Complete is the completer's work: it holds the pod's completer lock and
// keeps a view of the namespace current from one watch, acting only on the
// links that become actionable for this pod. It returns when all the pod's
// links are done, when the pod is deleted or replaced, or when ctx (bounded
// by pairTimeout) ends, after recording the links that timed out.
func (m *Manager) Complete(ctx context.Context, job *Job) error {
	defer m.removeJob(job.ContainerID)
	kv, err := m.store()
	if err != nil {
		return err
	}
	var lockVer int64
	var ok bool
	err = retryUnavailable(ctx, func() error {
		var err error
		lockVer, ok, err = m.lock(ctx, kv, job)
		return err
	})
	if err != nil || !ok {
		return err
	}
	defer func() {
		_ = kv.Delete(context.WithoutCancel(ctx), m.keys.Completer(job.Namespace, job.Name), lockVer)
	}()
	c := &completion{m: m, kv: kv, job: job}
	return c.run(ctx)
}

// completion is one completer's state.
type completion struct {
	m      *Manager
	kv     store.Store
	job    *Job
	v      *view
	events <-chan store.Event
	stop   context.CancelFunc
}

func (c *completion) run(ctx context.Context) error {
	defer func() {
		if c.stop != nil {
			c.stop()
		}
	}()
	if err := retryUnavailable(ctx, func() error { return c.resync(ctx) }); err != nil {
		return err
	}
	for {
		me, ok := c.me()
		if !ok {
			c.m.log.Info("completer: pod gone or replaced", "pod", podKey(c.job.Namespace, c.job.Name))
			return nil
		}
		pending, waiting, err := c.m.settleAll(ctx, c.kv, c.v, &me, c.v.linksOf(me.Name), roleCompleter)
		if err != nil {
			c.m.log.Warn("completer: link failed; retrying when something changes", "err", err)
		}
		left := append(pending, waiting...)
		if len(left) == 0 {
			return nil
		}
		if err := c.wait(ctx, c.claimExpiry(waiting)); err != nil {
			switch {
			case ctx.Err() == nil:
				return err
			case !errors.Is(err, context.DeadlineExceeded):
				return nil // stopped (DEL, a new incarnation): nothing to record
			}
			if _, still := c.me(); still {
				c.m.timedOut(context.WithoutCancel(ctx), c.kv, c.job, left)
			}
			return fmt.Errorf("pod %s: %d link(s) not wired within pairTimeout", podKey(c.job.Namespace, c.job.Name), len(left))
		}
	}
}

// me is the pod's current record, if it is still this container's.
func (c *completion) me() (store.PodRecord, bool) {
	p, ok := c.v.pod(c.job.Name)
	return p.val, ok && p.val.ContainerID == c.job.ContainerID
}

// resync takes a fresh snapshot, (re)starts the watch from it, and makes
// sure the records of the pod's wanted links exist.
func (c *completion) resync(ctx context.Context) error {
	if c.stop != nil {
		c.stop()
	}
	v, err := c.m.snapshot(ctx, c.kv, c.job.Namespace)
	if err != nil {
		return err
	}
	c.v = v
	wctx, stop := context.WithCancel(ctx)
	c.stop = stop
	c.events = c.kv.Watch(wctx, c.m.keys.Prefix, v.rev)
	if me, ok := c.me(); ok {
		want, err := c.m.wantedLinks(ctx, c.kv, &me.Pod)
		if err != nil {
			return err
		}
		return c.m.ensureLinks(ctx, c.kv, v, want)
	}
	return nil
}

// wait blocks until an event changes the view (then drains what else is
// there), until a claim may have gone stale (after), or until ctx ends,
// which is the only error.
func (c *completion) wait(ctx context.Context, after time.Duration) error {
	timer := time.NewTimer(after)
	defer timer.Stop()
	select {
	case ev, ok := <-c.events:
		if !ok {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return retryUnavailable(ctx, func() error { return c.resync(ctx) })
		}
		return c.handle(ctx, ev, true)
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle applies an event and those already queued behind it.
func (c *completion) handle(ctx context.Context, ev store.Event, drain bool) error {
	announces := c.m.keys.Announces(c.job.Namespace) + "/"
	for {
		switch {
		case ev.Err != nil:
			return retryUnavailable(ctx, func() error { return c.resync(ctx) })
		case strings.HasPrefix(ev.KV.Key, announces):
			if me, ok := c.me(); ok {
				want, err := c.m.wantedLinks(ctx, c.kv, &me.Pod)
				if err == nil {
					err = c.m.ensureLinks(ctx, c.kv, c.v, want)
				}
				if err != nil {
					c.m.log.Warn("completer: announced links", "err", err)
				}
			}
		default:
			c.v.apply(c.m, ev)
		}
		if !drain {
			return nil
		}
		select {
		case next, ok := <-c.events:
			if !ok {
				return nil
			}
			ev = next
		default:
			return nil
		}
	}
}

// claimExpiry is how long until the earliest live claim among waiting goes
// stale (then the completer may take over); an hour when there is none.
func (c *completion) claimExpiry(waiting []string) time.Duration {
	next := time.Hour
	for _, id := range waiting {
		if l, ok := c.v.link(id); ok && l.val.Builder != "" {
			if d := claimTTL - time.Since(l.val.Claimed) + 10*time.Millisecond; d < next {
				next = max(d, 10*time.Millisecond)
			}
		}
	}
	return next
}

// timedOut records the links still pending at pairTimeout as failed.
func (m *Manager) timedOut(ctx context.Context, kv store.Store, job *Job, pending []string) {
	for _, id := range pending {
		_, _, err := m.updateLink(ctx, kv, job.Namespace, id, func(r *store.LinkRecord) bool {
			if r.State == store.LinkWired {
				return false
			}
			_, theirs := r.EndsOf(job.Name)
			r.State = store.LinkFailed
			r.Reason = fmt.Sprintf("peer %s not wired within pairTimeout (%s)", podKey(job.Namespace, theirs.Pod), m.conf.PairTimeout)
			return true
		})
		if err != nil {
			m.log.Warn("record timed-out link", "link", id, "err", err)
		}
	}
}

// lock takes the pod's completer lock: at most one completer per pod. A
// live completer of the same container keeps it (ok is false); one of an
// earlier incarnation is stopped and replaced.
func (m *Manager) lock(ctx context.Context, kv store.Store, job *Job) (int64, bool, error) {
	key := m.keys.Completer(job.Namespace, job.Name)
	rec := store.CompleterRecord{ContainerID: job.ContainerID, Host: m.conf.Host.Name, PID: os.Getpid(), Started: time.Now().UTC()}
	ttl := m.conf.PairTimeout.D() + 30*time.Second
	for range store.MaxRetries {
		kvr, err := store.CreateJSON(ctx, kv, key, rec, ttl)
		if err == nil {
			return kvr.Version, true, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return 0, false, fmt.Errorf("completer lock: %w", err)
		}
		cur, ver, err := store.GetJSON[store.CompleterRecord](ctx, kv, key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, false, fmt.Errorf("completer lock: %w", err)
		}
		if cur.ContainerID == job.ContainerID && m.alive(cur) {
			return 0, false, nil
		}
		m.signal(cur)
		if err := kv.Delete(ctx, key, ver); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return 0, false, fmt.Errorf("completer lock: %w", err)
		}
	}
	return 0, false, fmt.Errorf("completer lock %s: too much contention", key)
}

// stopCompleter removes a container's completer lock (its completer sees
// that and exits) and signals the process when it runs on this host.
func (m *Manager) stopCompleter(ctx context.Context, kv store.Store, st localState) {
	key := m.keys.Completer(st.Namespace, st.Name)
	cur, ver, err := store.GetJSON[store.CompleterRecord](ctx, kv, key)
	if err != nil || cur.ContainerID != st.ContainerID {
		return
	}
	m.signal(cur)
	if err := kv.Delete(ctx, key, ver); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		m.log.Warn("remove completer lock", "err", err)
	}
}

// alive reports whether the completer of rec runs on this host.
func (m *Manager) alive(rec store.CompleterRecord) bool {
	if rec.Host != m.conf.Host.Name || rec.PID <= 0 || rec.PID == os.Getpid() {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(rec.PID) + "/cmdline")
	if err != nil {
		return false
	}
	return strings.Contains(string(cmdline), "\x00"+CompleterArg+"\x00") && strings.Contains(string(cmdline), rec.ContainerID)
}

// signal asks a completer of this host to stop.
func (m *Manager) signal(rec store.CompleterRecord) {
	if m.alive(rec) {
		_ = syscall.Kill(rec.PID, syscall.SIGTERM)
	}
}

// RunCompleter is the entry point of the detached completer process: it
// reads the job, logs to the netconf's logFile, and runs Complete bounded by
// pairTimeout and stopped by SIGTERM. It returns the process exit status.
func RunCompleter(jobFile string) int {
	job, err := ReadJob(jobFile)
	if err != nil {
		return 2
	}
	conf, err := config.Load(job.Netconf)
	if err != nil {
		return 2
	}
	log, closeLog := logging.Open(conf.LogFile, conf.LogLevel)
	defer closeLog()
	log = log.With("op", "COMPLETE", "container", job.ContainerID, "pod", podKey(job.Namespace, job.Name))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, conf.PairTimeout.D())
	defer cancel()
	m := New(conf, log, Deps{})
	defer m.Close()
	start := time.Now()
	if err := m.Complete(ctx, job); err != nil {
		log.Error("completer ended", "err", err, "took", time.Since(start))
		return 1
	}
	log.Info("completer done", "took", time.Since(start))
	return 0
}

// retryUnavailable runs fn until it succeeds or fails for another reason
// than etcd being unavailable, backing off up to 2s between tries, for as
// long as ctx lasts: a completer outlives an etcd restart.
func retryUnavailable(ctx context.Context, fn func() error) error {
	delay := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}
