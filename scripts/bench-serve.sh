#!/usr/bin/env bash
# The serving benchmark (make bench calls it): bertnode serve with batching off and on,
# side by side at each client count, next to the model's raw forward on the same
# batches. The clients run in another process (bertnode bench load). The tiny and base
# presets get random-init classify heads; the clients send SMS messages from data/, one
# per request. bertnode names OpenBLAS's kernels itself where OpenBLAS's detection falls
# back (README: CPU speed).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
./bin/bertnode bench serve --model tiny --concurrency 1,4,16,64 --warmup 3s --duration 5s --rounds 3
# The default above is one single-threaded instance per core; beside it, one instance
# with every core.
./bin/bertnode bench serve --model tiny --instances 1 --threads "$(nproc)" --concurrency 1,64 --warmup 3s --duration 5s --rounds 3
./bin/bertnode bench serve --model base --concurrency 1,4,16,64 --warmup 20s --duration 60s
# base with its encoder in int8 (--quantize int8), beside the float32 run above.
./bin/bertnode bench serve --model base --quantize int8 --concurrency 1,16,64 --warmup 20s --duration 60s
