#!/usr/bin/env bash
# The CPU training step, bertnode beside PyTorch in the same run: batch 8 x 128, fp32,
# 2 threads, OMP_WAIT_POLICY=passive, the same BLAS and kernels (Debian's libtorch and
# python3-torch both call the system libblas.so.3; scripts/blas-env.sh names the
# kernels). bertnode's side is model's BenchmarkTrainStep
# (zero grad, forward, backward, clip, AdamW); PyTorch's is
# ../shared/bench/bert_step_torch.py (zero grad, forward, backward, AdamW: no clipping),
# or a copy given by TORCH_BENCH. Each run takes two untimed steps, then reports its
# median step. A round runs both sides one after the other, in alternating order; the
# table shows each side's median over the rounds and the median of the rounds'
# bertnode/PyTorch ratios with their range, which other load on the machine shifts less
# than it shifts either side.
#
#   scripts/bench-step.sh                      # tiny mini base: 5, 5 and 2 rounds
#   PRESETS="tiny mini" ROUNDS=3 scripts/bench-step.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
. scripts/blas-env.sh
. scripts/torch-side.sh
PRESETS=${PRESETS:-tiny mini base}
TORCH_BENCH=${TORCH_BENCH:-../shared/bench/bert_step_torch.py}

steps() { # timed steps per run: base takes seconds a step
	case $1 in base) echo 3 ;; *) echo 10 ;; esac
}

rounds() {
	case $1 in base) echo "${ROUNDS:-2}" ;; *) echo "${ROUNDS:-5}" ;; esac
}

torch=yes
torch_side "$TORCH_BENCH" || torch=no

mkdir -p build/bench
go test -c -o build/bench/model.test ./model/
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# bertnode P R: one run of BenchmarkTrainStep/P into $out/bn-P-R: step, fwd+bwd, opt (ms).
bertnode() {
	(cd model && ../build/bench/model.test -test.run '^$' -test.bench "TrainStep/^$1\$" \
		-test.benchtime "$(steps "$1")x" -test.timeout 60m) |
		awk '/^BenchmarkTrainStep/ { for (i = 2; i <= NF; i++) v[$i] = $(i-1); print v["ms/step"], v["fwd+bwd-ms"], v["opt-ms"] }' \
			>"$out/bn-$1-$2"
}

# pytorch P R: one run of bert_step_torch.py for P into $out/pt-P-R, as for bertnode.
pytorch() {
	# torch's --threads does not bound OpenBLAS's pool; bertnode's --threads does.
	OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2} "$PY" "$TORCH_BENCH" --configs "$1" --threads 2 --no-infer --warmup 2 --steps "$(steps "$1")" 2>/dev/null |
		"$PY" -c 'import json, sys
for line in sys.stdin:
    r = json.loads(line) if line.startswith("{") else {}
    if r.get("bench") == "bert_train":
        print(1e3 * r["step_median_s"], 1e3 * (r["fwd_median_s"] + r["bwd_median_s"]), 1e3 * r["opt_median_s"])' \
			>"$out/pt-$1-$2"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for p in $PRESETS; do
	for r in $(seq 1 "$(rounds "$p")"); do
		if [ "$torch" = no ]; then
			bertnode "$p" "$r"
		elif [ $((r % 2)) = 1 ]; then
			bertnode "$p" "$r"
			pytorch "$p" "$r"
		else
			pytorch "$p" "$r"
			bertnode "$p" "$r"
		fi
	done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# median SIDE P: each column's median over the rounds.
median() {
	cat "$out/$1-$2"-* | awk '{ for (i = 1; i <= NF; i++) c[i, NR] = $i; n = NR }
		function med(i,   j, k, t, x) {
			for (j = 1; j <= n; j++) x[j] = c[i, j]
			for (j = 2; j <= n; j++) for (k = j; k > 1 && x[k-1] > x[k]; k--) { t = x[k]; x[k] = x[k-1]; x[k-1] = t }
			return n % 2 ? x[(n+1)/2] : (x[n/2] + x[n/2+1]) / 2
		}
		END { if (n == 0) { print "- - -"; exit } printf "%.1f %.1f %.1f\n", med(1), med(2), med(3) }'
}

echo
echo "training step, batch 8 x 128, fp32, 2 threads: ms, medians over the rounds"
if [ "$torch" = no ]; then
	printf "%-6s %7s %10s %10s %8s\n" config rounds step fwd+bwd opt
	for p in $PRESETS; do
		read -r s g o < <(median bn "$p")
		printf "%-6s %7s %10s %10s %8s\n" "$p" "$(rounds "$p")" "$s" "$g" "$o"
	done
	exit 0
fi
printf "%-6s %7s | %10s %10s %8s | %10s %10s %8s | %s\n" config rounds bertnode fwd+bwd opt PyTorch fwd+bwd opt "bertnode/PyTorch (range)"
for p in $PRESETS; do
	read -r s g o < <(median bn "$p")
	read -r ts tg to < <(median pt "$p")
	for r in $(seq 1 "$(rounds "$p")"); do
		paste -d' ' "$out/bn-$p-$r" "$out/pt-$p-$r" | awk '{ print $1 / $4 }'
	done | sort -g | awk '{ x[NR] = $1 } END { printf "%.2f (%.2f-%.2f)\n", NR % 2 ? x[(NR+1)/2] : (x[NR/2] + x[NR/2+1]) / 2, x[1], x[NR] }' >"$out/ratio"
	printf "%-6s %7s | %10s %10s %8s | %10s %10s %8s | %s\n" "$p" "$(rounds "$p")" "$s" "$g" "$o" "$ts" "$tg" "$to" "$(cat "$out/ratio")"
done
echo "(bertnode's opt includes clipping the gradient norm; PyTorch's does not clip)"
