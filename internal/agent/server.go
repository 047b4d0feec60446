package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/pairing"
)

// mux routes the plugin's calls.
func (a *Agent) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentapi.PathPing, a.handle("PING", a.ping))
	mux.HandleFunc("POST "+agentapi.PathHandover, a.handle("HANDOVER", a.handover))
	mux.HandleFunc("POST "+agentapi.PathLookup, a.handle("LOOKUP", a.podCall(a.lookup, true)))
	mux.HandleFunc("POST "+agentapi.PathAdd, a.handle("ADD", a.podCall(a.add, true)))
	mux.HandleFunc("POST "+agentapi.PathDel, a.handle("DEL", a.podCall(a.del, false)))
	mux.HandleFunc("POST "+agentapi.PathCheck, a.handle("CHECK", a.podCall(a.check, false)))
	mux.HandleFunc("POST "+agentapi.PathStatus, a.handle("STATUS", a.status))
	mux.HandleFunc("POST "+agentapi.PathGC, a.handle("GC", a.gc))
	return mux
}

type handler func(ctx context.Context, log *slog.Logger, body []byte) (agentapi.Answer, error)

// handle reads the body, runs fn, logs once and writes the answer or the
// error with its CNI code.
func (a *Agent) handle(op string, fn handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.inflight.Add(1)
		defer func() { a.lastReq.Store(time.Now().UnixNano()); a.inflight.Add(-1) }()
		start := time.Now()
		log := a.log.With("op", op)
		body, err := readBody(r)
		var ans agentapi.Answer
		if err == nil {
			ans, err = fn(r.Context(), log, body)
		}
		if err != nil {
			var aerr *agentapi.Error
			if !errors.As(err, &aerr) {
				aerr = toAPIError(err)
			}
			if op != "PING" {
				log.Error("failed", "err", err, "code", aerr.Code, "took", time.Since(start))
			}
			a.metrics.ObserveCNI(op, time.Since(start), aerr.Code)
			writeJSON(w, http.StatusInternalServerError, aerr)
			return
		}
		if op != "PING" {
			log.Debug("done", "took", time.Since(start))
		}
		a.metrics.ObserveCNI(op, time.Since(start), 0)
		writeJSON(w, http.StatusOK, ans)
	}
}

func readBody(r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	var buf json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<20)).Decode(&buf); err != nil {
		return nil, &agentapi.Error{Code: codeInternal, Msg: "bad request: " + err.Error()}
	}
	return buf, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// podCall decodes a pod's request and finds its pairer and logger. The
// pod's annotations in runtimeConfig matter to a lookup (ADD, LOOKUP)
// only: elsewhere (DEL, CHECK) ones that do not parse are left out.
func (a *Agent) podCall(fn func(ctx context.Context, m *pairing.Manager, req *pairing.Request) (agentapi.Answer, error), lookup bool) handler {
	return func(ctx context.Context, log *slog.Logger, body []byte) (agentapi.Answer, error) {
		var req agentapi.Request
		if err := json.Unmarshal(body, &req); err != nil {
			return agentapi.Answer{}, &agentapi.Error{Code: codeInternal, Msg: "bad request: " + err.Error()}
		}
		p, conf, err := a.pairers.get(req.Netconf)
		if err != nil {
			return agentapi.Answer{}, err
		}
		ann, err := podAnnotations(conf.RuntimeConfig)
		if err != nil && lookup {
			return agentapi.Answer{}, err
		}
		log = log.With("container", req.ContainerID, "ifname", req.IfName)
		preq := &pairing.Request{ContainerID: req.ContainerID, NetNS: req.NetNS, IfName: req.IfName, Args: req.Args, Reserved: req.Reserved,
			Annotations: ann}
		return fn(ctx, p.m.WithLog(log), preq)
	}
}

// lookup tells the plugin, while its delegates run, whether ADD has
// pairing work for the pod.
func (a *Agent) lookup(ctx context.Context, m *pairing.Manager, req *pairing.Request) (agentapi.Answer, error) {
	ok, err := m.IsRatchetPod(ctx, req)
	return agentapi.Answer{Ratchet: ok}, err
}

func (a *Agent) add(ctx context.Context, m *pairing.Manager, req *pairing.Request) (agentapi.Answer, error) {
	return agentapi.Answer{}, m.Add(ctx, req, nil)
}

// del runs to its end even when the plugin gives up waiting.
func (a *Agent) del(ctx context.Context, m *pairing.Manager, req *pairing.Request) (agentapi.Answer, error) {
	return agentapi.Answer{}, m.Del(context.WithoutCancel(ctx), req)
}

func (a *Agent) check(ctx context.Context, m *pairing.Manager, req *pairing.Request) (agentapi.Answer, error) {
	return agentapi.Answer{}, m.Check(ctx, req)
}

func (a *Agent) info() *agentapi.Info {
	return &agentapi.Info{Host: a.opts.Host, Version: a.opts.Version, PID: os.Getpid(),
		Started: a.started.UTC().Format(time.RFC3339), OnDemand: a.opts.OnDemand}
}

func (a *Agent) ping(context.Context, *slog.Logger, []byte) (agentapi.Answer, error) {
	return agentapi.Answer{Agent: a.info()}, nil
}

// status reports etcd as the agent reaches it.
func (a *Agent) status(ctx context.Context, _ *slog.Logger, body []byte) (agentapi.Answer, error) {
	var req agentapi.StatusRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return agentapi.Answer{}, err
	}
	p, _, err := a.pairers.get(req.Netconf)
	if err != nil {
		return agentapi.Answer{}, err
	}
	return agentapi.Answer{Agent: a.info()}, p.m.Status(ctx)
}

func (a *Agent) gc(ctx context.Context, log *slog.Logger, body []byte) (agentapi.Answer, error) {
	var req agentapi.GCRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return agentapi.Answer{}, err
	}
	p, _, err := a.pairers.get(req.Netconf)
	if err != nil {
		return agentapi.Answer{}, err
	}
	valid := make([]types.GCAttachment, 0, len(req.Valid))
	for _, v := range req.Valid {
		valid = append(valid, types.GCAttachment{ContainerID: v.ContainerID, IfName: v.IfName})
	}
	return agentapi.Answer{}, p.m.WithLog(log).GC(context.WithoutCancel(ctx), valid)
}

// capPodAnnotations is the runtimeConfig key under which containerd passes
// a pod's annotations to a plugin that declares that capability.
const capPodAnnotations = "io.kubernetes.cri.pod-annotations"

// podAnnotations returns the pod annotations in a call's runtimeConfig, as
// config.Load decoded it (nil when there are none); they must be an object
// of strings.
func podAnnotations(rc map[string]any) (map[string]string, error) {
	v, ok := rc[capPodAnnotations]
	if !ok || v == nil {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: runtimeConfig.%s must be an object of strings", pairing.ErrBadConfig, capPodAnnotations)
	}
	ann := make(map[string]string, len(obj))
	for k, val := range obj {
		s, ok := val.(string)
		if !ok {
			return nil, fmt.Errorf("%w: runtimeConfig.%s[%q] must be a string", pairing.ErrBadConfig, capPodAnnotations, k)
		}
		ann[k] = s
	}
	return ann, nil
}
