#!/usr/bin/env bash
# Cold `earmark ask` wall time (commit 6ede114 vs this checkout; needs hyperfine) and a 50-file batch
# vs 50 separate calls (BENCHMARKS.md "Cold start and batch runs"). Run alone on the machine.
#   OUT=DIR (scratch, default /tmp/earmark-bench-cold)  NEEDLE=DIR (the needle set: `earmark data synth needle`)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$OUT
NEEDLE=${NEEDLE:-/work/data/synth/needle500}
mkdir -p "$OUT"; cd "$OUT"
PY=$REPO/.venv/bin/python
export OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1
rm -rf base && mkdir base && (cd $REPO && git archive 6ede114 | tar -x -C $OUT/base)
$PY - "$REPO/scripts/examples/thunder.flac" <<'P'
import sys
import numpy as np, soundfile as sf
y, sr = sf.read(sys.argv[1])
reps = int(np.ceil(60 * sr / len(y)))
sf.write('clip60.flac', np.tile(y, reps)[:60 * sr], sr)
P
export EARMARK_CACHE=$OUT/cache
rm -rf cache
hyperfine -N --warmup 1 --runs 5 --export-json cold.json \
  -n before "bash -c 'mkdir -p $OUT; cd $OUT/base && $PY earmark_cli.py ask $OUT/clip60.flac thunder'" \
  -n after "$REPO/.venv/bin/earmark ask $OUT/clip60.flac thunder" \
  -n "after, no phrase cache" "env EARMARK_CACHE=off $REPO/.venv/bin/earmark ask $OUT/clip60.flac thunder" \
  -n "help" "$REPO/.venv/bin/earmark ask --help" 2>&1 | tee cold.txt
ls $NEEDLE/audio | grep test | head -50 | sed "s#^#$NEEDLE/audio/#" > files50.txt
wc -l files50.txt
start=$(date +%s.%N)
$REPO/.venv/bin/earmark ask -q "a dog barking" $(cat files50.txt) --format jsonl --out batch.jsonl --no-progress > /dev/null
end=$(date +%s.%N); echo "batch 50: $(echo "$end - $start" | bc) s" | tee batch.txt
start=$(date +%s.%N)
for f in $(cat files50.txt); do $REPO/.venv/bin/earmark ask "$f" "a dog barking" > /dev/null; done
end=$(date +%s.%N); echo "separate 50: $(echo "$end - $start" | bc) s" | tee -a batch.txt
rm -rf base cache
