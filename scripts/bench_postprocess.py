"""Which median filter should the scorer's frame scores get before event-level metrics?

Scores a SED manifest once without smoothing (a resumable `score_manifest` directory), then
median-filters those scores at each length and computes PSDS1 (also with α_st=0, which shows the
mean over classes that α_st=1 hides), the grounding PSDS, segment AUROC and mPAUC. Choose the
length on val, then report it on test:

    python scripts/bench_postprocess.py --scorer runs/cnn-scorer --manifest SED/val.jsonl --split val \
        --median 1,3,7,11,15,25 --out runs/pp-val
    python scripts/bench_postprocess.py --scorer runs/cnn-scorer --manifest SED/test.jsonl --split test \
        --median 7,15 --out runs/pp-test

Lengths are in frames of the scorer (25 frames/s for the default: 15 frames = 0.6 s, its
``median_seconds``). Prints the markdown table BENCHMARKS.md keeps; writes ``OUT/postprocess.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _lengths(text: str) -> list[int]:
    out = [int(x) for x in text.split(",") if x.strip()]
    bad = [n for n in out if n < 1 or n % 2 == 0]
    if not out or bad:
        raise SystemExit(f"--median {text!r}: give odd frame counts >= 1, e.g. 1,3,7,15")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scorer", help="checkpoint dir (default: embedded)")
    ap.add_argument("--manifest", required=True, help="SED manifest (events = ground truth)")
    ap.add_argument("--split")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--median", default="1,3,7,11,15,25", help="comma-separated odd lengths in frames")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    lengths = _lengths(args.median)

    import torch

    from contrastive.evaluate import score_manifest
    from contrastive.scorer import Scorer
    from eval.postprocess import median_filter
    from eval.sed_metrics import SedEvalConfig, evaluate_sed, ground_truth_from_manifest, read_scores

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    scorer = Scorer.from_pretrained(args.scorer)   # inference window and hop from its config.json
    fps = scorer.model.config.audio.frames_per_second
    res = score_manifest(scorer, args.manifest, out, split=args.split, limit=args.limit, smooth=False)
    raw = read_scores(out / "scores")
    raw = {i: raw[i] for i in res["ids"]}
    gt, durs = ground_truth_from_manifest(args.manifest, list(raw))
    config = SedEvalConfig(psds_settings=("psds1", "psds1_ast0", "grounding"))
    rows = []
    for n in lengths:
        t0 = time.time()
        m = evaluate_sed(median_filter(raw, filter_length=n), gt, durs, config=config)
        row = {"median_frames": n, "median_seconds": round(n / fps, 3), **m.psds,
               "segment_auroc": m.auroc, "mpauc": m.mpauc, "collar_f1_macro": m.collar_f1["macro"],
               "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    (out / "postprocess.json").write_text(json.dumps({"scorer": args.scorer, "manifest": args.manifest,
                                                      "split": args.split, "n_audio": len(raw),
                                                      "rows": rows}, indent=1) + "\n")
    print("\n| median filter | PSDS1 | PSDS1 α_st=0 | grounding PSDS | segment AUROC | mPAUC |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['median_frames']} frames ({r['median_seconds']:.2f} s) | {r['psds1']:.3f} | "
              f"{r['psds1_ast0']:.3f} | {r['grounding']:.3f} | {r['segment_auroc']:.3f} | {r['mpauc']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
