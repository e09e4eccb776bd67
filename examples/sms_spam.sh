#!/usr/bin/env bash
# SMS spam (the copy shipped in data/), 20% held out.
source "$(dirname "$0")/common.sh"
$BERTNODE train --task classify --train data/sms_spam/SMSSpamCollection --format labeltext \
  --eval-split 0.2 --model tiny --max-length 64 --lr 1e-3 --epochs 3 --threads 2 \
  --metric f1_spam --output "${OUT:-runs/sms}" "$@"
