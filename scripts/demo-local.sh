#!/usr/bin/env bash
# make demo-local: fine-tune a random-init tiny BERT on the SMS spam data shipped in the repo
# (about a minute on 2 cores), then show what it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-runs/demo-sms}
./bin/bertnode train \
  --train data/sms_spam/SMSSpamCollection --format labeltext --eval-split 0.2 \
  --model tiny \
  --max-length 64 --batch-size 32 --lr 1e-3 --epochs 2 --threads 2 \
  --metric f1_spam --output "$out"
echo
echo "predictions of the fine-tuned model (attention view in $out/attention.html):"
./bin/bertnode predict --model "$out/best" --attention "$out/attention.html" \
  "WINNER!! You have been selected for a free cash prize. Call now to claim" \
  "Are we still on for dinner at 7?"
echo
echo "outputs in $out:"
ls -1 "$out" "$out/best"
