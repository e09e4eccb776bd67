#!/usr/bin/env bash
# int8 inference (model.Quantize, --quantize int8) against float32, bertnode beside
# PyTorch's quantize_dynamic in the same run: the tiny and base presets on one thread
# (as a served instance runs), random weights, full-length batches 1 x 25, 16 x 40 and
# 32 x 128. bertnode's side is model's BenchmarkInferInt8 (float32 and int8 alternating);
# PyTorch's is scripts/torch_int8_infer.py over ../shared/bench/bert_step_torch.py's
# minimal BERT (or TORCH_BENCH), the same layers quantized. A round runs both sides;
# the table has each figure's median over ROUNDS rounds (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
. scripts/blas-env.sh
. scripts/torch-side.sh
TORCH_BENCH=${TORCH_BENCH:-../shared/bench/bert_step_torch.py}
ROUNDS=${ROUNDS:-2}

torch=yes
torch_side "$TORCH_BENCH" || torch=no

mkdir -p build/bench
go test -c -o build/bench/model.test ./model/
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$ROUNDS"); do
	for p in tiny base; do
		# lines: bertnode preset BxS float32_ms int8_ms
		(cd model && ../build/bench/model.test -test.run '^$' -test.bench "InferInt8/^$p-" \
			-test.benchtime "$([ $p = base ] && echo 3 || echo 20)x" -test.timeout 60m) |
			awk '/^BenchmarkInferInt8/ { split($1, n, "/"); sub(/-[0-9]+$/, "", n[2]); split(n[2], s, "-")
				for (i = 2; i <= NF; i++) v[$i] = $(i-1); print "bertnode", s[1], s[2], v["float32-ms"], v["int8-ms"] }' >>"$out"
		if [ $torch = yes ]; then
			"$PY" scripts/torch_int8_infer.py --bert "$TORCH_BENCH" --preset $p --iters "$([ $p = base ] && echo 3 || echo 20)" |
				awk '{ print "pytorch", $1, $2, $3, $4; print $5 > "/dev/stderr" }' >>"$out" 2>"$out.engine"
		fi
	done
done
engine=$(sort -u "$out.engine" 2>/dev/null | head -1); rm -f "$out.engine"
awk -v engine="${engine:-none}" '
	function med(list,   a, n, i, j, t) { n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	{ k = $2 " " $3; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
	  f[$1, k] = f[$1, k] " " $4; q[$1, k] = q[$1, k] " " $5 }
	END {
		printf "%-6s %-7s | %-28s | %-28s | %s\n", "model", "batch", "bertnode ms: fp32, int8, x", "PyTorch ms: fp32, int8, x", "int8: PyTorch / bertnode"
		for (i = 1; i <= nk; i++) { k = keys[i]; split(k, kk, " ")
			bf = med(f["bertnode", k]); bq = med(q["bertnode", k])
			line = sprintf("%-6s %-7s | %8.2f %8.2f %5.2fx  ", kk[1], kk[2], bf, bq, bf / bq)
			if (("pytorch", k) in f) { pf = med(f["pytorch", k]); pq = med(q["pytorch", k])
				line = line sprintf(" | %8.2f %8.2f %5.2fx   | %.2fx", pf, pq, pf / pq, pq / bq) }
			print line }
		print "(1 thread; medians of each side; PyTorch engine: " engine ")" }' "$out"
