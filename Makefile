# ratchet — build, test, benchmark and demo targets. Tests need root.
# Go as installed on the project machines, also when not on PATH.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := $(CURDIR)/bin
PKGS    := ./...
# The real-cluster suite (test/k8s) runs only under `make test-k8s`.
TESTPKGS = $(shell $(GO) list $(PKGS) | grep -v /test/k8s)
# Where scripts/k8s-binaries.sh caches Kubernetes, flannel and etcd.
RATCHET_CACHE ?= $(HOME)/.cache/ratchet
# `make fuzz` runs every fuzz target of the module (found by name), each
# for FUZZTIME.
FUZZTIME ?= 10s

.PHONY: all build test test-short test-k8s k8s-binaries lint fuzz bench demo clean

all: build

# Static binaries, as CNI plugins ship (no libc on the nodes needed; a
# plugin's start is ~3.5 ms faster without the dynamic loader and cgo).
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./ratchet ./ratchetd $(wildcard ./announcer) $(wildcard ./utils/ratchetctl)

# The whole suite, as root: real netns, real etcd, real plugins, real dockerd.
test:
	$(GO) test -count=1 -timeout 25m $(TESTFLAGS) $(TESTPKGS)

# Unit tests only (parsing and validation; no root needed).
test-short:
	$(GO) test -count=1 -short $(TESTPKGS)

# Kubernetes, flannel and etcd binaries of the real-cluster suite, built from
# the Go module proxy into $(RATCHET_CACHE) (about 10 minutes cold, seconds
# warm).
k8s-binaries:
	bash scripts/k8s-binaries.sh $(RATCHET_CACHE)

# The real-cluster suite, as root: two kubelet + containerd + flanneld nodes,
# the examples applied with kubectl (examples/README.md).
test-k8s: k8s-binaries
	RATCHET_K8S_SUITE=1 RATCHET_CACHE=$(RATCHET_CACHE) $(GO) test -count=1 -timeout 30m $(TESTFLAGS) ./test/k8s

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fuzz:
	@set -e; grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sort -u | \
	  while IFS=: read -r file fn; do pkg=./$$(dirname $${file#./}); fn=$${fn#func }; \
	    echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
	    for try in 1 2 3; do \
	      if $(GO) test -run XXX -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg </dev/null; then break; fi; \
	      [ $$try -lt 3 ] || exit 1; \
	      echo "fuzz $$pkg $$fn failed; again (a failing input found is now in testdata and fails again; the fuzzer's own 'context deadline exceeded' at the end of -fuzztime does not)"; \
	    done; done

# The benchmark table (bench/results/latest.json), then the wiring
# package against the same work done with `ip`, and cnitool over ratchet
# against cnitool over bare bridge.
bench: build
	$(GO) test -run XXX -bench . -benchtime 1x -timeout 60m ./bench
	$(GO) test -run XXX -bench . -benchtime 200x ./internal/wiring
	$(GO) test -run XXX -bench . -benchtime 1x ./ratchet

demo: build
	$(GO) run ./scripts/demo

clean:
	rm -rf $(BIN)
