#!/usr/bin/env bash
# The CPU training step, bertnode beside PyTorch in the same run: batch 8 x 128, fp32,
# 2 threads, OMP_WAIT_POLICY=passive, the same BLAS (Debian's libtorch and python3-torch
# both call the system libblas.so.3). bertnode's side is model's BenchmarkTrainStep
# (zero grad, forward, backward, clip, AdamW); PyTorch's is
# ../shared/bench/bert_step_torch.py (zero grad, forward, backward, AdamW: no clipping),
# or a copy given by TORCH_BENCH. Both take two untimed steps, then report the median
# step. Each preset runs ROUNDS times (default 2), the two sides in alternating order;
# the table shows the mean of the rounds' medians.
#
#   scripts/bench-step.sh                      # tiny mini base
#   PRESETS="tiny mini" ROUNDS=3 scripts/bench-step.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
PRESETS=${PRESETS:-tiny mini base}
ROUNDS=${ROUNDS:-2}
TORCH_BENCH=${TORCH_BENCH:-../shared/bench/bert_step_torch.py}
PY=/usr/bin/python3

steps() { # timed steps per run: base takes seconds a step
	case $1 in base) echo 3 ;; *) echo 10 ;; esac
}

torch=yes
if [ ! -f "$TORCH_BENCH" ]; then
	echo "PyTorch side: $TORCH_BENCH not found; bertnode's side only"
	torch=no
elif ! "$PY" -c 'import torch' 2>/dev/null; then
	echo "PyTorch side: torch is not installed (apt-get install -y python3-torch); bertnode's side only"
	torch=no
fi

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
	"$PY" "$TORCH_BENCH" --configs "$1" --threads 2 --no-infer --warmup 2 --steps "$(steps "$1")" 2>/dev/null |
		"$PY" -c 'import json, sys
for line in sys.stdin:
    r = json.loads(line) if line.startswith("{") else {}
    if r.get("bench") == "bert_train":
        print(1e3 * r["step_median_s"], 1e3 * (r["fwd_median_s"] + r["bwd_median_s"]), 1e3 * r["opt_median_s"])' \
			>"$out/pt-$1-$2"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for p in $PRESETS; do
	for r in $(seq 1 "$ROUNDS"); do
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

# mean SIDE P: the mean over the rounds of each column.
mean() {
	cat "$out/$1-$2"-* | awk '{ for (i = 1; i <= NF; i++) s[i] += $i; n++ }
		END { if (n == 0) { print "- - -"; exit } printf "%.1f %.1f %.1f\n", s[1]/n, s[2]/n, s[3]/n }'
}

echo
echo "training step, batch 8 x 128, fp32, 2 threads, ms (mean of $ROUNDS rounds' medians)"
if [ "$torch" = no ]; then
	printf "%-6s %10s %10s %8s\n" config step fwd+bwd opt
	for p in $PRESETS; do
		read -r s g o < <(mean bn "$p")
		printf "%-6s %10s %10s %8s\n" "$p" "$s" "$g" "$o"
	done
	exit 0
fi
printf "%-6s | %10s %10s %8s | %10s %10s %8s | %s\n" config bertnode fwd+bwd opt PyTorch fwd+bwd opt "bertnode/PyTorch"
for p in $PRESETS; do
	read -r s g o < <(mean bn "$p")
	read -r ts tg to < <(mean pt "$p")
	ratio=$(awk -v a="$s" -v b="$ts" 'BEGIN { printf "%.2f", a / b }')
	printf "%-6s | %10s %10s %8s | %10s %10s %8s | %s\n" "$p" "$s" "$g" "$o" "$ts" "$tg" "$to" "$ratio"
done
echo "(bertnode's opt includes clipping the gradient norm; PyTorch's does not clip)"
