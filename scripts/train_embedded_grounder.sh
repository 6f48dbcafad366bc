#!/usr/bin/env bash
# The embedded default grounder, on this CPU: an untrained grounder around the scorer's frozen
# encoder (compact tokenizer trained on our text + the corpus labels; audio tokens carry the
# scorer's frame scores for the query), then two stages of full training of the small Qwen2 LM +
# projectors on the long-form and needle train splits:
#   1. existence questions only (STEPS1): a from-scratch LM first collapses to the answer prior
#      and ignores its input; on existence alone it starts reading the evidence within ~100 steps;
#   2. existence + grounding (STEPS2), from stage 1's weights;
#   3. existence + grounding with hints (STEPS3): the grounding questions carry the scorer's top-3
#      candidate windows as text, so localisation becomes a short-range copy (20 % without a hint).
#
#   SCORER=contrastive/default LONG=.../longform/train.jsonl NEEDLE=.../needle500/train.jsonl \
#       bash scripts/train_embedded_grounder.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SCORER=${SCORER:?set SCORER to the scorer checkpoint directory}
LONG=${LONG:?set LONG to the long-form manifest}
NEEDLE=${NEEDLE:?set NEEDLE to the needle manifest}
INIT=${INIT:-runs/embedded-init}
OUT=${OUT:-runs/embedded-grounder}
STEPS1=${STEPS1:-300}
STEPS2=${STEPS2:-650}
STEPS3=${STEPS3:-400}
CONFIG1=${CONFIG1:-grounding/configs/train_embedded_exist.json}
CONFIG2=${CONFIG2:-grounding/configs/train_embedded.json}
CONFIG3=${CONFIG3:-grounding/configs/train_embedded_hint.json}
# NO_INTERLEAVE=1: the same recipe without timestamps in the audio tokens (the paper's Table 7 ablation)
ABL=${NO_INTERLEAVE:+--no-interleave}
earmark grounding init-embedded --encoder "$SCORER" --out "$INIT" --config grounding/configs/embedded_arch.json \
    --manifest "$LONG" --manifest "$NEEDLE"
earmark grounding train "$CONFIG1" --backbone "$INIT" --output-dir "$OUT-exist" \
    --source "$LONG:1" --source "$NEEDLE:1" --max-steps "$STEPS1" $ABL
earmark grounding train "$CONFIG2" --backbone "$OUT-exist/merged" --output-dir "$OUT-ground" \
    --source "$LONG:1" --source "$NEEDLE:1" --max-steps "$STEPS2" $ABL
earmark grounding train "$CONFIG3" --backbone "$OUT-ground/merged" --output-dir "$OUT" \
    --source "$LONG:1" --source "$NEEDLE:1" --max-steps "$STEPS3" --hint-scorer "$SCORER" $ABL
