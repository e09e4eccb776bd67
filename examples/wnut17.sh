#!/usr/bin/env bash
# WNUT-17 emerging entities (BIO), entity-level F1 as seqeval computes it. The labels sort
# as B-* (6), I-* (6), O: "O" gets weight 0.1, or a small random-init model tags all O.
source "$(dirname "$0")/common.sh"
$BERTNODE train --task ner --train "$SHARED/wnut17/wnut17train.conll" \
  --eval "$SHARED/wnut17/emerging.test.annotated" --format conll --model tiny \
  --max-length 96 --batch-size 32 --lr 1e-3 --epochs 10 --threads 2 \
  --class-weights 1,1,1,1,1,1,1,1,1,1,1,1,0.1 \
  --output "${OUT:-runs/wnut17}" "$@"
