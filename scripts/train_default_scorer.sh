#!/usr/bin/env bash
# Reproduce the embedded default scorer (contrastive/default/): heads on the frozen, pretrained
# YAMNet trunk (contrastive/yamnet/, AudioSet), trained on CPU from the corpus recipes.
# Needs /work/data/synth/sed/{train,val,test}.jsonl, /work/data/corpus/clips.jsonl and
# /work/data/synth/needle500 (`earmark data`; README "The sound corpus").
#
# 1. trunk features of every train/val clip are cached once (onnxruntime, ~5 min for 5,500 clips),
#    then the heads train on the train split (classes in the config's held_out never seen) and the
#    step with the best val frame AUROC is kept (contrastive/configs/yamnet.json);
# 2. the existence calibration is fitted on the SED val split, the decisions on the needle val
#    queries (median filters: BENCHMARKS.md);
# 3. test is evaluated once, then the weights are copied into the package.
# CONFIG=contrastive/configs/default.json with `earmark contrastive train` reproduces the previous
# default (the from-scratch CNN, shipped as contrastive/cnn/).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/default-scorer}
CONFIG=${CONFIG:-contrastive/configs/yamnet.json}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1
earmark contrastive train-yamnet "$CONFIG" --out "$OUT"
earmark contrastive calibrate "$OUT" /work/data/synth/sed/val.jsonl --split val --limit 200 --window 30 --hop 27 \
    --median-seconds "${MEDIAN:-0.6}" --exists-median-seconds "${EXISTS_MEDIAN:-0.28}"
NEEDLE=${NEEDLE:-/work/data/synth/needle500}
earmark contrastive thresholds "$OUT" "$NEEDLE/val.queries.jsonl" --manifest "$NEEDLE/val.jsonl"
earmark contrastive eval "$OUT" /work/data/synth/sed/test.jsonl --split test --out "$OUT/test-eval" --psds psds1,psds1_ast0,psds2,grounding
mkdir -p contrastive/default
rm -f contrastive/default/model.safetensors contrastive/default/config.json
cp "$OUT"/config.json "$OUT"/model.safetensors contrastive/default/
