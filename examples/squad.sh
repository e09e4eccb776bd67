#!/usr/bin/env bash
# SQuAD v1.1: the pipeline end to end on the dev file (no train file is shipped): a
# random-init tiny model learns little here; the point is windows, answer search, EM/F1.
source "$(dirname "$0")/common.sh"
$BERTNODE train --task qa --train "$SHARED/squad_v1.1/dev-v1.1.json" --format squad \
  --eval-split 0.1 --model tiny --max-length 256 --doc-stride 96 --batch-size 16 \
  --lr 5e-4 --epochs 1 --threads 2 --output "${OUT:-runs/squad}" "$@"
