"""Which fusion of grounder and scorer answers best? Existence and window rules, fitted on one
split and applied unchanged to another.

Every query of a split is asked once in ``fused`` mode with the verifier off and stage 2 always
asked (``probe_ground``), and once to the scorer alone; each query keeps the scorer's existence
probability, the LLM's P("Yes"), the LLM's windows (snapped to the scorer's candidates, as
``fused`` does) and the scorer's peak windows (``--rows`` caches them). Then:

* existence ``scorer`` (p >= its exists_threshold), ``llm`` (the grounder's answer, vetoed below
  the scorer's absent_below: what ``fused`` does today) or ``joint``: w x logit(p_scorer) +
  (1 - w) x logit(P_llm) >= t, with (w, t) chosen on the ``--fit`` rows for the best two-stage F1;
* windows ``scorer`` (peak windows) or ``llm``;

and every combination is scored with ``eval`` (mIoU, R1@0.5, accuracy on positives/negatives, F1).

    python scripts/bench_fusion_rules.py --manifest NEEDLE/val.jsonl --queries NEEDLE/val.queries.jsonl \\
        --grounder G --scorer S --rows runs/fusion-val.json
    python scripts/bench_fusion_rules.py --manifest NEEDLE/test.jsonl --queries NEEDLE/test.queries.jsonl \\
        --grounder G --scorer S --rows runs/fusion-test.json --fit runs/fusion-val.json
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bench_fused_windows import add_split_args, ask_both, load_both  # its sibling: scripts/ is on sys.path

WEIGHTS = [round(0.1 * i, 1) for i in range(11)]


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def collect(manifest: Path, queries: Path, grounder: str, scorer: str) -> list[dict]:
    fused, alone = load_both(grounder, scorer)
    rows = []
    for q, f, s in ask_both(fused, alone, manifest, queries):
        if f.exists:
            llm_w = [(w.start, w.end) for w in f.windows]
        else:  # stage 2 asked anyway: the windows it would have given, fused the same way
            probe = [tuple(w) for w in (f.probe or {}).get("windows", [])]
            sc = {"candidates": [tuple(c) for c in f.scorer["candidates"]], "curve": f.curve}
            llm_w = [(w.start, w.end) for w in fused.pipeline._fuse_windows(probe, sc, f.p_llm)]
        rows.append({"id": q.id, "audio_id": q.audio_id, "query": q.query, "negative": q.negative,
                     "windows": [list(w) for w in q.windows], "p_scorer": s.score,  # unrounded
                     "p_llm": f.p_llm, "llm_yes": f.exists, "llm_windows": llm_w,
                     "scorer_windows": [(w.start, w.end) for w in s.windows]})
    return rows


def decide(rows: list[dict], rule: dict) -> list[bool]:
    kind = rule["existence"]
    if kind == "scorer":
        return [r["p_scorer"] >= rule["exists_threshold"] for r in rows]
    if kind == "llm":
        return [bool(r["llm_yes"]) and r["p_scorer"] >= rule["absent_below"] for r in rows]
    w, t = rule["w"], rule["t"]
    return [w * _logit(r["p_scorer"]) + (1 - w) * _logit(r["p_llm"] if r["p_llm"] is not None else 0.5) >= t
            for r in rows]


def score(rows: list[dict], exists: list[bool], windows: str) -> dict:
    from data_recipes.formats import PredictionRecord, QueryRecord
    from eval.scoring import score_predictions

    qs = [QueryRecord(id=r["id"], audio_id=r["audio_id"], query=r["query"], negative=r["negative"],
                      windows=[tuple(w) for w in r["windows"]]) for r in rows]
    preds = [PredictionRecord.for_query(q, exists=e, windows=[list(w) for w in r[f"{windows}_windows"]] if e else [],
                                        raw="", engine="rules", ms=0.0, status="strict", score=None)
             for q, r, e in zip(qs, rows, exists)]
    o = score_predictions(qs, preds).overall
    return {"miou": o.miou, "r1_0.5": o.r1["0.5"], "pos": o.existence.positive, "neg": o.existence.negative,
            "f1": o.f1.f1}


def fit_joint(rows: list[dict], windows: str) -> dict:
    """(w, t) with the best two-stage F1 on ``rows``; ties go to the larger mIoU, then the larger w."""
    best = None
    for w in WEIGHTS:
        zs = sorted({w * _logit(r["p_scorer"]) + (1 - w) * _logit(r["p_llm"] if r["p_llm"] is not None else 0.5)
                     for r in rows})
        for t in zs:
            m = score(rows, decide(rows, {"existence": "joint", "w": w, "t": t}), windows)
            key = (m["f1"], m["miou"], w)
            if best is None or key > best[0]:
                best = (key, {"existence": "joint", "w": w, "t": t})
    return best[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_split_args(ap)
    ap.add_argument("--rows", required=True, help="JSON cache of the per-query answers (made if missing)")
    ap.add_argument("--fit", help="rows JSON of the split the joint rule is fitted on (default: these rows)")
    args = ap.parse_args(argv)

    from contrastive.scorer import Scorer

    rows_path = Path(args.rows)
    if rows_path.is_file():
        rows = json.loads(rows_path.read_text())
    else:
        rows = collect(Path(args.manifest), Path(args.queries), args.grounder, args.scorer)
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        rows_path.write_text(json.dumps(rows))
    fit_rows = json.loads(Path(args.fit).read_text()) if args.fit else rows
    sc = Scorer.from_pretrained(args.scorer)
    fixed = {"scorer": {"existence": "scorer", "exists_threshold": sc.exists_threshold},
             "llm": {"existence": "llm", "absent_below": sc.absent_below}}
    print(f"{len(rows)} queries; joint rules fitted on {args.fit or args.rows}")
    print("| existence | windows | rule | mIoU | R1@0.5 | acc. pos / neg | F1 |")
    print("|---|---|---|---|---|---|---|")
    for windows in ("scorer", "llm"):
        rules = dict(fixed, joint=fit_joint(fit_rows, windows))
        for name, rule in rules.items():
            m = score(rows, decide(rows, rule), windows)
            shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in rule.items() if k != "existence"}
            print(f"| {name} | {windows} | {json.dumps(shown)} | {m['miou']:.1f} | {m['r1_0.5']:.1f} | "
                  f"{m['pos']:.1f} / {m['neg']:.1f} | {m['f1']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
