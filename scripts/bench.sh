#!/usr/bin/env bash
# make bench: measurements that are too slow or too timing-sensitive for make test.
# Each section prints a table; none of this runs in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
. scripts/blas-env.sh
echo "== model: training step beside PyTorch (batch 8, seq 128, 2 threads)"
./scripts/bench-step.sh
echo
echo "== model: AdamW against the memory floor; gradient hand-off"
go test -run '^$' -bench 'AdamW|GradHandoff' -benchtime 10x -timeout 30m ./model/
echo
echo "== model: gradient checkpointing's recomputation (fwd + bwd with it against without, alternating)"
go test -run '^$' -bench 'GradientCheckpointing' -benchtime 6x -timeout 30m ./model/
echo
echo "== tokenize: encoding and collation"
go test -run '^$' -bench . -benchmem ./tokenize/
echo
echo "== allreduce: ring over loopback beside gloo, separate processes (see allreduce/README.md)"
./scripts/bench-allreduce.sh
echo
echo "== stream: plan and stream a growing dataset (the reader's memory stays bounded)"
./bin/bertnode bench stream --sizes 100M,1G,3G
echo
echo "== model: inference on served batches' shapes, packed (unpad.go) against padded"
go test -run '^$' -bench 'InferUnpadded' -benchtime 6x -timeout 30m ./model/
echo
echo "== model: int8 inference (--quantize int8) against float32, beside PyTorch's quantize_dynamic"
./scripts/bench-int8.sh
echo
echo "== serve: HTTP serving with dynamic batching, off and on, next to the raw forward"
./scripts/bench-serve.sh
echo
echo "== allreduce: slow links, ranks in network namespaces behind tbf (see allreduce/README.md)"
./scripts/bench-slowlink.sh
echo
echo "== distributed step: 2 ranks beside PyTorch DDP over gloo (see docs/bench.md)"
./scripts/bench-ddp.sh
