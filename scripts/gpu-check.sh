#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and PyTorch (whose torch/ folder is the
# libtorch) but no Go and no network. Run scripts/gpu-bundle.sh on a build machine first;
# results go to $OUT (default out/). Stages, in the order given (default: all but suite):
#   cuda   builds gotch against that libtorch with CUDA and runs the model's CUDA tests:
#          CPU/CUDA agreement, host gradient, the fused attention and AdamW kernels
#          against the op-by-op paths (libtorch 2.x), and the step at batch 32 x 128 in
#          fp32, TF32, bf16 and fp16, then TF32 and bf16 op by op (TestCUDAMixedPrecision
#          logs each time); then train's CUDA tests (evaluation, fp16 unscaling)
#   serve  builds bertnode and runs bench serve on CUDA for base (batching off and on,
#          next to the raw forward)
#   torch  PyTorch's step and inference on the same GPU (torch_gpu_step.py, which the
#          bundle carries): the side-by-side figures for the two stages above
#   suite  the whole model suite (CPU tests) on that libtorch
# Everything is built once per machine (in $W); a later call on the same warm machine
# reuses it. The cuda and serve stages leave Go CPU profiles in $OUT (cuda-cpu.prof,
# serve-cpu.prof; symbolized, so `go tool pprof -top FILE` reads them here): where the
# host's time goes between kernel launches.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/.device
OUT=${OUT:-$PWD/out}
W=/tmp/bertnode-gpu
stages=${*:-cuda serve torch}
mkdir -p "$W" "$OUT"
[ -d "$W/go" ] || tar -xJf "$B/go.tar.xz" -C "$W"
[ -d "$W/gotch@v0.9.1" ] || tar -xJf "$B/gotch.tar.xz" -C "$W"
# The bundle's module zips are trimmed (gpu-bundle.sh), so they do not match go.sum:
# build against a copy of go.mod whose go.sum, beside it, Go fills from the bundle.
[ -f "$W/go.sum" ] || { cp go.mod "$W/go.mod" && rm -f "$W/go.sum"; }
export PATH=$W/go/bin:$PATH GOROOT=$W/go GOTOOLCHAIN=local GOPROXY=file://$B/proxy GOSUMDB=off \
  GOFLAGS="-mod=mod -modfile=$W/go.mod" GOMODCACHE=$W/mod GOCACHE=$W/cache GOTCH_SRC=$W/gotch@v0.9.1 OMP_WAIT_POLICY=passive
# LIBTORCH set, even empty (Debian's), names the libtorch instead of the wheel's.
LIBTORCH=${LIBTORCH-$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')}
export LIBTORCH
if [ ! -f build/gotch/libtch/unavailable-ops.txt ]; then
  {
    go version; g++ --version | head -1; nvidia-smi -L
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  } 2>&1 | tee "$OUT/env.txt" || true # facts only: a missing tool stops nothing
  { time go run ./tools/gotchadapt -out build/gotch; cat build/gotch/libtch/unavailable-ops.txt; } 2>&1 | tee "$OUT/adapt.log"
fi
model_test() {
  [ -x "$W/model.test" ] || go test -vet=off -c -o "$W/model.test" ./model/ 2>&1 | tail -30
  "$W/model.test" "$@"
}
# train's tests read the repository's data files from the package's directory.
train_test() {
  [ -x "$W/train.test" ] || go test -vet=off -c -o "$W/train.test" ./train/ 2>&1 | tail -30
  (cd train && "$W/train.test" "$@")
}
run_stage() {
  case $1 in
    cuda) { model_test -test.v -test.run 'CUDA|Fused' -test.cpuprofile "$OUT/cuda-cpu.prof" &&
      train_test -test.v -test.run 'CUDA'; } 2>&1 | tee "$OUT/cuda-tests.log" ;;
    serve)
      [ -x "$W/bertnode" ] || go build -o "$W/bertnode" ./cmd/bertnode
      "$W/bertnode" bench serve --model base --device cuda --concurrency 1,16,64 \
        --warmup 5s --duration 8s --cpuprofile "$OUT/serve-cpu.prof" 2>&1 | tee "$OUT/serve.log" ;;
    torch) OUT=$OUT python3 "$B/torch_gpu_step.py" 2>&1 | tee "$OUT/torch.log" ;;
    suite) model_test -test.run . 2>&1 | tail -15 | tee "$OUT/model-suite.log" ;;
  esac
}
# A stage that fails is reported and the next one still runs: a device call is too dear
# to stop at the first failure. The exit status says whether any failed.
failed=
for s in $stages; do
  case $s in cuda | serve | torch | suite) ;; *) echo "gpu-check: unknown stage $s (cuda, serve, torch, suite)" >&2; exit 2 ;; esac
  echo "== $s ($(date +%T))"
  run_stage "$s" || { echo "== $s FAILED"; failed="$failed $s"; }
done
[ -z "$failed" ] || { echo "gpu-check: failed:$failed"; exit 1; }
