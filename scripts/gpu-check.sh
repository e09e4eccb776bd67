#!/usr/bin/env bash
# The GPU check of the foundation issue, for a machine with an NVIDIA GPU and PyTorch
# (whose torch/ folder is the libtorch) but no Go and no network: builds gotch against
# that libtorch with CUDA, runs the model's CUDA tests (CPU/CUDA agreement, host gradient,
# bf16/fp16 mixed precision with step times) and then the whole model suite.
# Run scripts/gpu-bundle.sh on a build machine first; results go to $OUT (default out/).
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/.device
OUT=${OUT:-$PWD/out}
W=/tmp/bertnode-gpu
mkdir -p "$W" "$OUT"
tar -xJf "$B/go.tar.xz" -C "$W"
tar -xJf "$B/gotch.tar.xz" -C "$W"
# The bundle's module zips are trimmed (gpu-bundle.sh), so they do not match go.sum:
# build against a copy of go.mod whose go.sum, beside it, Go fills from the bundle.
cp go.mod "$W/go.mod" && rm -f "$W/go.sum"
export PATH=$W/go/bin:$PATH GOROOT=$W/go GOTOOLCHAIN=local GOPROXY=file://$B/proxy GOSUMDB=off \
  GOFLAGS="-mod=mod -modfile=$W/go.mod" GOMODCACHE=$W/mod GOCACHE=$W/cache GOTCH_SRC=$W/gotch@v0.9.1 OMP_WAIT_POLICY=passive
LIBTORCH=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
export LIBTORCH
{
  go version; g++ --version | head -1; nvidia-smi -L
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} 2>&1 | tee "$OUT/env.txt"
time go run ./tools/gotchadapt -out build/gotch 2>&1 | tee "$OUT/adapt.log"
cp build/gotch/libtch/unavailable-ops.txt "$OUT/" || true
time go test -vet=off -c -o "$W/model.test" ./model/ 2>&1 | tail -30
"$W/model.test" -test.v -test.run CUDA 2>&1 | tee "$OUT/cuda-tests.log"
"$W/model.test" -test.run . 2>&1 | tail -15 | tee "$OUT/model-suite.log"
