#!/usr/bin/env bash
# The scorer of scripts/train_default_scorer.sh trained on the wide corpus instead of the narrow one
# (issue #23: same trunk, heads, steps, val split and decisions; only the training data differ).
# Needs the narrow data of train_default_scorer.sh plus
#   earmark data corpus-wide /work/data/wide/corpus --narrow /work/data/corpus     (~7 min here)
#   earmark data synth sed --corpus /work/data/wide/corpus --out /work/data/wide/synth/sed --n 6000 --split all
# The held-out classes stay out: contrastive/configs/yamnet_wide.json lists them plus every wording of
# the AudioSet classes that are the same sounds (Door, Slam, Neigh, Typing, Sawing, Splash, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/wide-scorer}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1
earmark contrastive train-yamnet contrastive/configs/yamnet_wide.json --out "$OUT"
earmark contrastive calibrate "$OUT" /work/data/synth/sed/val.jsonl --split val --limit 200 --window 30 --hop 27 \
    --median-seconds "${MEDIAN:-0.6}" --exists-median-seconds "${EXISTS_MEDIAN:-0.28}"
NEEDLE=${NEEDLE:-/work/data/synth/needle500}
earmark contrastive thresholds "$OUT" "$NEEDLE/val.queries.jsonl" --manifest "$NEEDLE/val.jsonl"
