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
# Fuzz targets run by `make fuzz` (package:target), each for FUZZTIME.
FUZZTIME ?= 10s
FUZZ    := ./internal/config:FuzzLoad ./internal/metadata:FuzzParse ./internal/metadata:FuzzParseLabelFile ./internal/announce:FuzzTopology ./internal/store:FuzzLinkID

.PHONY: all build test test-short test-k8s k8s-binaries lint fuzz bench demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./ratchet $(wildcard ./announcer) $(wildcard ./utils/ratchetctl)

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
	@set -e; for t in $(FUZZ); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  if [ -d $$pkg ] && grep -q "func $$fn" $$pkg/*_test.go 2>/dev/null; then \
	    echo "fuzz $$pkg $$fn ($(FUZZTIME))"; $(GO) test -run XXX -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; fi; done

# The benchmark table (bench/results/latest.json), then the wiring
# package against the same work done with `ip`, and cnitool over ratchet
# against cnitool over bare bridge.
bench: build
	$(GO) test -run XXX -bench . -benchtime 1x -timeout 30m ./bench
	$(GO) test -run XXX -bench . -benchtime 200x ./internal/wiring
	$(GO) test -run XXX -bench . -benchtime 1x ./ratchet

demo: build
	$(GO) run ./scripts/demo

clean:
	rm -rf $(BIN)
