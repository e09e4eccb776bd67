#!/usr/bin/env bash
# Dense passage retrieval on SQuAD v1.1 dev: an embedding model (task embed) trained on
# (question, context) pairs with in-batch negatives; 10% of the questions held out, each
# ranking every held-out question's context.
source "$(dirname "$0")/common.sh"
$BERTNODE train --task embed --train "$SHARED/squad_v1.1/dev-v1.1.json" --format squad \
  --eval-split 0.1 --model tiny --pooling mean --max-length 192 --batch-size 32 --lr 5e-4 \
  --epochs 1 --threads 2 --output "${OUT:-runs/squad_retrieval}" "$@"
