"""Held-out classes vs the classes a scorer trained on, from runs that already exist.

    python scripts/bench_heldout.py --held-out-from contrastive/configs/yamnet.json \
        [--sed-eval RUN_DIR --sed-manifest SED/test.jsonl] \
        [--needle-run EVAL_DIR --needle-queries NEEDLE/test.queries.jsonl --needle-manifest NEEDLE/test.jsonl]

``--sed-eval`` is an ``earmark contrastive eval`` output (its ``scores/*.tsv``): pooled frame
AUROC over the held-out classes' columns and over the others. ``--needle-run`` is an ``earmark
eval`` output (its ``predictions.jsonl``): the queries are split by class (a query counts as
held-out when the vocabulary maps it to a held-out class; negatives too) and each half is scored
with ``eval.scoring.score_files``. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sed_part(run: Path, manifest: Path, held: set[str]) -> dict:
    import pandas as pd

    from contrastive.data import frame_labels
    from contrastive.train import auroc
    from data_recipes.formats import ManifestRecord, iter_jsonl

    recs = {r.id: r for r in iter_jsonl(manifest, ManifestRecord)}
    parts = {"held_out": ([], []), "known": ([], [])}
    n = 0
    for tsv in sorted((run / "scores").glob("*.tsv")):
        r = recs.get(tsv.stem)
        if r is None:
            raise SystemExit(f"{tsv}: no record {tsv.stem!r} in {manifest}")
        frame = pd.read_csv(tsv, sep="\t")
        classes = [c for c in frame.columns if c not in ("onset", "offset")]
        fps = 1.0 / float(frame["offset"].iloc[0] - frame["onset"].iloc[0])
        s = frame[classes].to_numpy().T
        lab = frame_labels([(e.query, e.start, e.end) for e in r.events], classes, s.shape[1], fps)
        for k, c in enumerate(classes):
            key = "held_out" if c in held else "known"
            parts[key][0].append(s[k])
            parts[key][1].append(lab[k])
        n += 1
    out = {"n_audio": n}
    for key, (ss, ll) in parts.items():
        if ss:
            s, l = np.concatenate(ss), np.concatenate(ll)
            out[f"frame_auroc_{key}"] = round(float(auroc(s, l)), 4)
            out[f"positive_frames_{key}"] = int(l.sum())
    return out


def needle_part(run: Path, queries: Path, manifest: Path | None, held: set[str], tmp: Path,
                canonical: dict[str, str]) -> dict:
    from data_recipes import vocabulary as voc
    from eval.scoring import ScoringConfig, score_files

    rows = [json.loads(x) for x in queries.read_text().splitlines() if x.strip()]

    def cls(r):   # a reworded query keeps its canonical query's id
        q = canonical.get(r["id"], r["query"])
        return voc.lookup(q) or q

    out = {}
    for key in ("held_out", "known"):
        sel = [r for r in rows if (cls(r) in held) == (key == "held_out")]
        if not sel:
            continue
        qf = tmp / f"{queries.stem}.{key}.jsonl"
        qf.write_text("".join(json.dumps(r) + "\n" for r in sel))
        # the run answered every query; the other half's predictions are ignored, not counted
        res = score_files(run / "predictions.jsonl", qf, manifest_path=manifest,
                          config=ScoringConfig(allow_missing=True))
        if res.id_check.missing:
            raise SystemExit(f"{run}: {len(res.id_check.missing)} {key} queries have no prediction")
        o = res.overall.to_dict()
        out[key] = {"n_queries": o["n_queries"], "miou": round(o["miou"], 1), "r1@0.5": round(o["r1"]["0.5"], 1),
                    "acc_pos": round(o["existence"]["positive"], 1), "acc_neg": round(o["existence"]["negative"], 1),
                    "f1": round(o["f1"]["f1"], 1)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--held-out-from", type=Path, required=True, help="a training config with held_out")
    ap.add_argument("--sed-eval", type=Path)
    ap.add_argument("--sed-manifest", type=Path)
    ap.add_argument("--needle-run", type=Path, action="append", default=[])
    ap.add_argument("--needle-queries", type=Path, action="append", default=[])
    ap.add_argument("--needle-manifest", type=Path)
    ap.add_argument("--canonical", type=Path, action="append", default=[],
                    help="canonical queries file(s): reworded queries take their class by id from these")
    args = ap.parse_args(argv)
    held = set(json.loads(args.held_out_from.read_text()).get("held_out") or [])
    if not held:
        raise SystemExit(f"{args.held_out_from}: no held_out classes")
    res = {"held_out": sorted(held)}
    if args.sed_eval:
        res["sed"] = sed_part(args.sed_eval, args.sed_manifest, held)
    if len(args.needle_run) != len(args.needle_queries):
        raise SystemExit("give one --needle-queries per --needle-run")
    canonical = {}
    for f in args.canonical:
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                canonical[r["id"]] = r["query"]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for run, q in zip(args.needle_run, args.needle_queries):
            res[f"needle:{run.name}"] = needle_part(run, q, args.needle_manifest, held, Path(tmp), canonical)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
