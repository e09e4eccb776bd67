# bertnode. `make demo` and `make test` work on a fresh Debian 12 machine: they install
# what they need first (Debian packages through apt-get, Go modules through the proxy).
SHELL := /bin/bash
GO ?= go
BIN := bin/bertnode
# libgomp reads these when it loads, so they must be in the environment before the
# process starts: spinning OpenMP waits make 2-thread steps 10-30x slower on shared cores.
export OMP_WAIT_POLICY ?= passive

# Go modules come through the module proxy as the go command needs them (go mod download
# would read build/gotch, which the adapter has not written yet on a fresh clone).
# Debian packages: libtorch (unless LIBTORCH names another one), an optimised BLAS for it
# (with the reference BLAS a BERT-base step is 30x slower), WordNet for augmentation.
DEB_PKGS := libopenblas0-openmp wordnet-base g++
ifeq ($(LIBTORCH),)
DEB_PKGS += libtorch-dev
endif
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps gotch onnx-deps build test demo demo-local bench chaos race fuzz libtorch2-check clean

all: build

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Adapts gotch to the libtorch found (Debian's, or LIBTORCH=/path); cached by a stamp.
gotch: deps
	@$(GO) run ./tools/gotchadapt -out build/gotch

# ONNX Runtime for Node.js, which the ONNX export's tests run exported models in
# (internal/ortrun): the CPU build bundled in the npm package; --ignore-scripts skips its
# CUDA download, which fails offline. Cached under build/; without npm, or when the
# install fails, those tests skip and say why.
ORT_DIR := build/onnxruntime
onnx-deps:
	@if [ -d $(ORT_DIR)/node_modules/onnxruntime-node ]; then exit 0; fi; \
	if ! command -v npm >/dev/null; then echo "onnx-deps: npm not found: the ONNX Runtime tests will skip"; exit 0; fi; \
	mkdir -p $(ORT_DIR) && npm install --prefix $(ORT_DIR) --ignore-scripts --no-audit --no-fund onnxruntime-node@1 \
		|| echo "onnx-deps: npm install onnxruntime-node failed: the ONNX Runtime tests will skip"

build: gotch
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/bertnode

test: gotch onnx-deps
	$(GO) vet ./...
	$(GO) test -timeout 25m ./...

# A local cluster (3 coordinators, 2 nodes) fine-tunes on SMS spam; see scripts/demo.sh.
demo: build
	./scripts/demo.sh

# The same fine-tuning in one process: bertnode train.
demo-local: build
	./scripts/demo-local.sh

bench: build
	./scripts/bench.sh

# The fault suite: 20 randomized runs of a job on a local cluster of processes with
# nodes and the raft leader killed, stopped, cut off and replaced (not in make test,
# which runs a short version). Partitions need root (network namespaces).
chaos: build
	./bin/bertnode chaos --runs 20

# The suite under the race detector (not in make test: about 20 minutes on 2 cores).
race: gotch
	$(GO) test -race -timeout 60m ./...

# Every fuzz target for FUZZTIME (60s) each; make test runs only their seed corpora.
fuzz: gotch
	FUZZTIME=$(or $(FUZZTIME),60s) ./scripts/fuzz.sh

# The code only libtorch 2.x runs (fused attention, fused AdamW), on the CPU: Debian 13's
# libtorch 2.6 in a chroot under build/trixie (root; scripts/libtorch2-check.sh).
libtorch2-check:
	./scripts/libtorch2-check.sh

clean:
	rm -rf bin build
