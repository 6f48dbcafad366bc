"""Whose windows are better, the grounder's or the scorer's, once existence is settled?

For every positive query of a split, ask the pipeline in ``fused`` mode with the verifier off and
stage 2 always asked (``probe_ground``), and the scorer alone (always answering, with its peak
windows); then score both window sets
against the truth as if existence had been answered right (mIoU and R1@0.5 over positives,
``eval.metrics``). This separates the grounder's localisation from its existence decisions.

    python scripts/bench_fused_windows.py --manifest NEEDLE/val.jsonl --queries NEEDLE/val.queries.jsonl \
        --grounder runs/sc-hint/merged --scorer runs/tcn-scorer
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def add_split_args(ap: argparse.ArgumentParser) -> None:
    """The split and the two models every fusion study reads."""
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--grounder", required=True)
    ap.add_argument("--scorer", required=True)


def load_both(grounder: str, scorer: str):
    """``fused`` with the verifier off and stage 2 always asked (``probe_ground``), and the scorer
    alone always answering with its peak windows (threshold 0)."""
    from grounding.api import Grounder

    fused = Grounder.from_pretrained(grounder=grounder, scorer=scorer, mode="fused", verifier="off",
                                     probe_ground=True)
    alone = Grounder.from_pretrained(scorer=scorer, mode="scorer", scorer_threshold=0.0)
    return fused, alone


def ask_both(fused, alone, manifest, queries, *, positives_only: bool = False):
    """(query, fused answer, scorer-alone answer) for every query of the split, file by file."""
    from tqdm import tqdm

    from data_recipes.formats import ManifestRecord, QueryRecord, iter_jsonl, resolve_audio

    manifest = Path(manifest)
    recs = {r.id: r for r in iter_jsonl(manifest, ManifestRecord)}
    by_audio: dict[str, list] = {}
    for q in iter_jsonl(queries, QueryRecord):
        if not (positives_only and q.negative):
            by_audio.setdefault(q.audio_id, []).append(q)
    for aid, qs in tqdm(by_audio.items(), desc="queries by file"):
        path = str(resolve_audio(manifest, recs[aid]))
        texts = [q.query for q in qs]
        yield from zip(qs, fused.ask_many(path, texts), alone.ask_many(path, texts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_split_args(ap)
    args = ap.parse_args(argv)

    from eval.metrics import iou

    ious = {"grounder": [], "scorer": []}
    for q, f, s in ask_both(*load_both(args.grounder, args.scorer), args.manifest, args.queries, positives_only=True):
        # the grounder's windows: its answer after "yes", or stage 2 asked anyway after "no"
        g = [(w.start, w.end) for w in f.windows] if f.exists else [tuple(w) for w in (f.probe or {}).get("windows", [])]
        truth = [tuple(w) for w in q.windows]
        ious["grounder"].append(iou(g, truth) if g else 0.0)
        ious["scorer"].append(iou([(w.start, w.end) for w in s.windows], truth) if s.windows else 0.0)
    out = {k: {"miou": round(100 * float(np.mean(v)), 1), "r1_0.5": round(100 * float(np.mean(np.asarray(v) >= 0.5)), 1),
               "n": len(v)} for k, v in ious.items()}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
