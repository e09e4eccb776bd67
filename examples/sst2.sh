#!/usr/bin/env bash
# SST-2 sentiment: train on train.tsv, evaluate on test.tsv (the labelled GLUE dev set).
source "$(dirname "$0")/common.sh"
$BERTNODE train --task classify --train "$SHARED/sst2/train.tsv" --eval "$SHARED/sst2/test.tsv" \
  --format tsv --text-column sentence --label-column label --model tiny \
  --max-length 64 --batch-size 32 --lr 5e-4 --epochs 2 --threads 2 --eval-steps 1000 \
  --metric accuracy --output "${OUT:-runs/sst2}" "$@"
