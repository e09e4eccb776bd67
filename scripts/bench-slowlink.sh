#!/usr/bin/env bash
# The ring all-reduce over slow links (issue #10): every rank in its own network
# namespace, joined by veth pairs to a bridge, each link capped by tc tbf at 1 and
# 10 Gbit/s; N=2 and N=4; the codecs take turns iteration by iteration in one run per
# (rate, N), next to a raw TCP baseline in the ring's shape. Prints each run's table,
# then the goals. Needs root (namespaces, links, qdiscs); skips otherwise.
#   SLOWLINK_RATES="1gbit 10gbit" SLOWLINK_RANKS="2 4" SLOWLINK_SIZE=64M SLOWLINK_ITERS=5
#   BERTNODE=path/to/bertnode (default bin/bertnode; another build, to compare two)
set -euo pipefail
cd "$(dirname "$0")/.."
rates=${SLOWLINK_RATES:-1gbit 10gbit}
ranks=${SLOWLINK_RANKS:-2 4}
size=${SLOWLINK_SIZE:-64M}
iters=${SLOWLINK_ITERS:-5}
codecs=none,s2,bf16,fp16,powersgd
bertnode=${BERTNODE:-./bin/bertnode}

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
	echo "slow links: skipped (needs root, ip and tc to make network namespaces and rate limits)"
	exit 0
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for rate in $rates; do
	for n in $ranks; do
		echo "-- link $rate, $n ranks, $size of random float32, $iters iterations"
		"$bertnode" bench allreduce --netns --link-rate "$rate" --ranks "$n" --sizes "$size" \
			--codec "$codecs" --raw-tcp --iters "$iters" --warmup 1 | tee -a "$out" | grep -v '^{'
		echo
	done
done

# The goals, from the JSON lines: codec none's busbw >= 90% of the link rate, bf16's
# effective busbw >= 1.9x none's, PowerSGD's >= 10x. The ceilings say what a codec
# could reach against codec none at the full link rate if each rank had a core to
# itself: none's bytes at the link rate / max(the codec's CPU per rank, its bytes at
# the link rate).
awk '
function field(line, name,   m) {
	if (match(line, "\"" name "\":(\"[^\"]*\"|[-0-9.e+]+)")) {
		m = substr(line, RSTART + length(name) + 3, RLENGTH - length(name) - 3)
		gsub("\"", "", m)
		return m
	}
	return ""
}
function verdict(ok) { return ok ? "met" : "NOT met" } # callers add 0: fields are strings
function ceiling(k, c,   bps, t) {
	bps = link[k] * 1e9
	t = wire[k, c] / bps
	if (cpu[k, c] > t) t = cpu[k, c]
	return wire[k, "none"] / bps / t
}
/^\{/ {
	k = field($0, "link") " " field($0, "ranks")
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	c = field($0, "codec")
	busbw[k, c] = field($0, "busbw_GBps")
	use[k, c] = field($0, "link_use")
	vs[k, c] = field($0, "vs_none")
	cpu[k, c] = field($0, "cpu_s_per_rank")
	wire[k, c] = field($0, "wire_bytes_per_rank")
	link[k] = field($0, "link_GBps")
	load[k] = field($0, "load_avg")
}
END {
	print "goals: codec none busbw >= 90% of the link; bf16 effective busbw >= 1.9x none; powersgd >= 10x"
	printf "%-7s %5s %9s %10s %9s %12s %9s %12s %13s %16s %5s  %s\n", "link", "ranks", "link_GB/s", "none_busbw",
		"none/link", "raw-tcp/link", "bf16/none", "bf16_ceiling", "powersgd/none", "powersgd_ceiling", "load", "goals"
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, p, " ")
		printf "%-7s %5s %9.3f %10.3f %8.1f%% %11.1f%% %8.2fx %11.2fx %12.2fx %15.2fx %5.1f  %s, %s, %s\n", p[1], p[2],
			link[k], busbw[k, "none"], 100 * use[k, "none"], 100 * use[k, "raw-tcp"], vs[k, "bf16"], ceiling(k, "bf16"),
			vs[k, "powersgd"], ceiling(k, "powersgd"), load[k],
			verdict(use[k, "none"] + 0 >= 0.9), verdict(vs[k, "bf16"] + 0 >= 1.9), verdict(vs[k, "powersgd"] + 0 >= 10)
	}
	print "ceiling: vs none at the full link rate if each rank had a core to itself (its CPU time or its bytes at the link rate, whichever is longer)"
}' "$out"
