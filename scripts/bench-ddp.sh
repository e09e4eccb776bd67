#!/usr/bin/env bash
# The distributed training step beside PyTorch DDP over gloo, in one run: rounds of
# ddp_bert_gloo.py then bertnode bench ddp with the same model, batch and threads
# (bertnode runs the script itself, alternating), then both side by side.
#
#   scripts/bench-ddp.sh [bertnode bench ddp flags...]   e.g. --rounds 3 --configs tiny
#
# BENCH_DIR: the peer scripts (default ../shared/bench from the repository root).
# PYTHON: an interpreter with torch (default /usr/bin/python3; apt-get install python3-torch).
# DDP_JSONL: append every row, both sides, to this file.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export GLOO_SOCKET_IFNAME=${GLOO_SOCKET_IFNAME:-lo}
bench_dir=${BENCH_DIR:-$root/../shared/bench}
python=${PYTHON:-/usr/bin/python3}
args=(--nprocs 2 --configs tiny,mini --batch 8 --seq 128 --warmup 3 --steps 10 --rounds 2)
[ -n "${DDP_JSONL:-}" ] && args+=(--jsonl "$DDP_JSONL")
echo "load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, $(date -Is)"
if [ -f "$bench_dir/ddp_bert_gloo.py" ] && "$python" -c 'import torch' 2>/dev/null; then
	./bin/bertnode bench ddp "${args[@]}" --torch-script "$bench_dir/ddp_bert_gloo.py" --python "$python" "$@"
else
	if [ ! -f "$bench_dir/ddp_bert_gloo.py" ]; then
		echo "no $bench_dir/ddp_bert_gloo.py (set BENCH_DIR): bertnode's side only"
	else
		echo "$python has no torch (apt-get install -y python3-torch): bertnode's side only"
	fi
	./bin/bertnode bench ddp "${args[@]}" "$@"
fi
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
