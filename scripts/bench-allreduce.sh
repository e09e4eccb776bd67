#!/usr/bin/env bash
# The ring all-reduce beside torch.distributed gloo, in one run: for each size, rank
# count and transport (shm: the ranks reduce through shared memory; tcp: over loopback),
# compare_allreduce.py runs gloo, then `bertnode bench allreduce --transport T`, then
# gloo again, and prints bertnode's busbw over the better gloo's (goal: 1.5x). Rounds
# alternate the transports' order, so that both meet the machine's load alike. Without
# torch it prints bertnode's side alone (both transports taking turns) and says why.
#
#   scripts/bench-allreduce.sh                 # 16, 64 and 420 MiB; 2 and 4 ranks; shm, tcp
#   SIZES="64M" RANKS="2" TRANSPORTS="shm" ROUNDS=3 scripts/bench-allreduce.sh
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
TRANSPORTS=${TRANSPORTS:-shm tcp}
ROUNDS=${ROUNDS:-1}
bytes() { numfmt --from=iec "$1"; }

echo "load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, $(date -Is)"
if [ ! -f "$bench_dir/compare_allreduce.py" ] || ! "$python" -c 'import torch' 2>/dev/null; then
	echo "no gloo to compare with ($bench_dir/compare_allreduce.py and torch: apt-get install -y python3-torch): bertnode's side only"
	for n in $RANKS; do
		./bin/bertnode bench allreduce --ranks "$n" --sizes "$(echo "$SIZES" | tr ' ' ,)" --codec none \
			--transport "$(echo "$TRANSPORTS" | tr ' ' ,)"
	done
	exit 0
fi
# compare_allreduce.py runs `$bertnode bench allreduce ...`: one wrapper per transport.
# Each rank generates its random gradient (420 MiB: seconds of CPU) before the ranks
# line up; on loaded cores their skew can pass the default 5 s timeout, so allow 60 s.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in $TRANSPORTS; do
	printf '#!/bin/sh\nexec %q "$@" --transport %s --timeout 60s\n' "$root/bin/bertnode" "$t" >"$tmp/bertnode-$t"
	chmod +x "$tmp/bertnode-$t"
done
for round in $(seq "$ROUNDS"); do
	order=$TRANSPORTS
	if [ $((round % 2)) = 0 ]; then order=$(echo "$TRANSPORTS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
	for s in $SIZES; do
		for t in $order; do
			# the goal is a target to report, not a reason to stop the bench
			"$python" "$bench_dir/compare_allreduce.py" --bertnode "$tmp/bertnode-$t" --ranks $RANKS \
				--size "$(bytes "$s")" | grep -v '^allreduce: worst' | sed "s/^/round $round $t: /" || true
		done
	done
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
