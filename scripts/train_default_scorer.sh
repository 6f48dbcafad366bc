#!/usr/bin/env bash
# Reproduce the embedded default scorer (contrastive/default/) on CPU from the corpus recipes.
# Needs /work/data/synth/sed/{train,val,test}.jsonl and /work/data/corpus/clips.jsonl (`earmark data`).
# Trains on the train split only (max_minutes=58 in the config, data loading included), fits the
# existence calibration on val, chooses the existence decisions on the needle val queries
# (needs /work/data/synth/needle500 too), evaluates on test, then copies the weights into the package.
# Under load use one torch thread: OpenMP with 2 threads on 2 oversubscribed cores ran 5x slower.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/default-scorer}
export OMP_NUM_THREADS=1
earmark contrastive train contrastive/configs/default.json --out "$OUT" --cache-dir runs/mel-cache
# the default's encoder (TCN + linear dense head) sees ~3 s of context, so long inference windows
# are exact away from their edges and 4x cheaper than 10 s windows at 50 % overlap
earmark contrastive calibrate "$OUT" /work/data/synth/sed/val.jsonl --split val --limit 200 --window 30 --hop 27
NEEDLE=${NEEDLE:-/work/data/synth/needle500}
earmark contrastive thresholds "$OUT" "$NEEDLE/val.queries.jsonl" --manifest "$NEEDLE/val.jsonl"
earmark contrastive eval "$OUT" /work/data/synth/sed/test.jsonl --split test --out "$OUT/test-eval" --psds psds1,psds2
mkdir -p contrastive/default
cp "$OUT"/config.json "$OUT"/model.safetensors contrastive/default/
