#!/usr/bin/env bash
# make demo: start a local cluster (3 coordinators, 2 nodes: separate processes on
# loopback), fine-tune a random-init tiny BERT on the SMS spam data shipped in the repo
# across the 2 nodes, follow it, fetch the model and its reports, and stop the cluster,
# leaving no process behind.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/bertnode
dir=${CLUSTER_DIR:-runs/demo-cluster}
out=${OUT_DIR:-runs/demo-sms}
rm -rf "$dir" "$out"

echo "== a local cluster in $dir: 3 coordinators (raft), 2 nodes"
$bin cluster up --dir "$dir" --coordinators 3 --nodes 2 --threads 1
trap '$bin cluster down --dir "$dir"' EXIT
eval "$($bin cluster env --dir "$dir")"
echo
$bin status
echo
echo "the dashboard, while the cluster runs: $($bin ui | head -1)"
echo
echo "== bertnode submit examples/cluster/sms.yaml --wait  (2 nodes, global batch 32)"
$bin submit examples/cluster/sms.yaml --wait | tee "$dir/submit.log"
job=$(awk '/^submitted /{print $2; exit}' "$dir/submit.log")
echo
$bin status "$job"
echo
$bin download "$job" --kind best --output "$out/best"
$bin download "$job" --kind final --output "$out/final"
echo
echo "predictions of the fine-tuned model:"
$bin predict --model "$out/best" \
  "WINNER!! You have been selected for a free cash prize. Call now to claim" \
  "Are we still on for dinner at 7?"
echo
echo "the model, its curves (curves.png) and confusion matrix (confusion.png) are in $out/final:"
ls -1 "$out/final"
