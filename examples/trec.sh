#!/usr/bin/env bash
# TREC-6 question classification; train.txt is ISO-8859-1.
source "$(dirname "$0")/common.sh"
$BERTNODE train --task classify --train "$SHARED/trec/train.txt" --eval "$SHARED/trec/test.txt" \
  --format labeltext --encoding latin-1 --model tiny \
  --max-length 48 --batch-size 32 --lr 1e-3 --epochs 8 --threads 2 \
  --metric accuracy --output "${OUT:-runs/trec}" "$@"
