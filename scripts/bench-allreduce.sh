#!/usr/bin/env bash
# The ring all-reduce beside torch.distributed gloo, in one run: for each size and rank
# count, compare_allreduce.py runs gloo, then `bertnode bench allreduce`, then gloo
# again, and prints bertnode's busbw over the better gloo's (goal: 1.5x). Without torch
# it prints bertnode's side alone and says why.
#
#   scripts/bench-allreduce.sh                 # 16, 64 and 420 MiB; 2 and 4 ranks
#   SIZES="64M" RANKS="2" scripts/bench-allreduce.sh
#
# BENCH_DIR: the peer scripts (default ../shared/bench from the repository root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export GLOO_SOCKET_IFNAME=${GLOO_SOCKET_IFNAME:-lo}
bench_dir=${BENCH_DIR:-$root/../shared/bench}
python=${PYTHON:-/usr/bin/python3}
SIZES=${SIZES:-16M 64M 420M}
RANKS=${RANKS:-2 4}
bytes() { numfmt --from=iec "$1"; }

echo "load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, $(date -Is)"
if [ ! -f "$bench_dir/compare_allreduce.py" ] || ! "$python" -c 'import torch' 2>/dev/null; then
	echo "no gloo to compare with ($bench_dir/compare_allreduce.py and torch: apt-get install -y python3-torch): bertnode's side only"
	for n in $RANKS; do
		./bin/bertnode bench allreduce --ranks "$n" --sizes "$(echo "$SIZES" | tr ' ' ,)" --codec none
	done
	exit 0
fi
for s in $SIZES; do
	# the goal is a target to report, not a reason to stop the bench
	"$python" "$bench_dir/compare_allreduce.py" --bertnode bin/bertnode --ranks $RANKS --size "$(bytes "$s")" |
		grep -v '^allreduce: worst' || true
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
