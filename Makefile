# ratchet — build, test, benchmark and demo targets. Tests need root.
# Go as installed on the project machines, also when not on PATH.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := $(CURDIR)/bin
PKGS    := ./...
# `make fuzz` runs every fuzz target of the module (found by name), each
# for FUZZTIME.
FUZZTIME ?= 10s

.PHONY: all build test test-short lint fuzz bench demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./ratchet ./ratchetd $(wildcard ./announcer) $(wildcard ./utils/ratchetctl)

# The whole suite, as root: real netns, real etcd, real plugins, real dockerd.
test:
	$(GO) test -count=1 -timeout 25m $(TESTFLAGS) $(PKGS)

# Unit tests only (parsing and validation; no root needed).
test-short:
	$(GO) test -count=1 -short $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fuzz:
	@set -e; grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sort -u | \
	  while IFS=: read -r file fn; do pkg=./$$(dirname $${file#./}); fn=$${fn#func }; \
	    echo "fuzz $$pkg $$fn ($(FUZZTIME))"; $(GO) test -run XXX -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg </dev/null; done

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
