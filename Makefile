# ratchet — build, test, benchmark and demo targets. Tests need root.
# Go as installed on the project machines, also when not on PATH.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := $(CURDIR)/bin
PKGS    := ./...
# Fuzz targets run by `make fuzz` (package:target), each for FUZZTIME.
FUZZTIME ?= 10s
FUZZ    := ./internal/config:FuzzLoad ./internal/metadata:FuzzParse ./internal/metadata:FuzzParseLabelFile ./internal/announce:FuzzTopology ./internal/store:FuzzLinkID

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
