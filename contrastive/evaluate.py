"""Score a SED manifest with a scorer: one sed_scores_eval TSV per audio (onset, offset, one column
per class), resumable, plus a frame AUROC computed here.

Classes are the distinct event queries of the manifest (open vocabulary: each query text is its
own class), and every audio is scored against every class, as in FineLAP/FLAM's PSDS protocol.
The metrics themselves (PSDS1/PSDS2/AUROC/mPAUC through sed_scores_eval) belong to ``eval``:
``earmark eval sed DIR/scores --manifest MANIFEST`` computes them, and ``earmark contrastive
eval`` calls that for convenience (contrastive the library never imports eval).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_recipes.formats import ManifestRecord, iter_jsonl, resolve_audio

from .data import frame_labels
from .train import auroc


def score_manifest(scorer, manifest: str | Path, out_dir: str | Path, *, split: str | None = None,
                   limit: int | None = None, classes: list[str] | None = None, smooth: bool = True,
                   progress: bool = True) -> dict:
    """Write ``out_dir/scores/<id>.tsv`` for each record (skipping those already written) and
    return {"classes", "ids", "frame_auroc", "n_frames"}. ``smooth``: the scorer's events median
    filter before writing (``earmark contrastive eval`` writes raw scores and filters once, as
    ``earmark eval sed`` does); recorded in ``out_dir/score_files.json``."""
    from tqdm import tqdm

    manifest, out_dir = Path(manifest), Path(out_dir)
    recs = [r for r in iter_jsonl(manifest, ManifestRecord) if split is None or r.split in (None, split)]
    if limit is not None:
        recs = recs[:limit]
    if not recs:
        raise ValueError(f"{manifest}: no records" + (f" in split {split!r}" if split else ""))
    if classes is None:
        classes = sorted({e.query for r in recs for e in r.events})
    if not classes:
        raise ValueError(f"{manifest}: no events, so no classes to score")
    sdir = out_dir / "scores"
    sdir.mkdir(parents=True, exist_ok=True)
    _same_post_processing(out_dir, sdir, {"median_seconds": scorer.median_seconds if smooth else 0.0})
    (out_dir / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")
    all_s, all_l = [], []
    for r in tqdm(recs, desc="score", disable=not progress):
        path = sdir / f"{r.id}.tsv"
        if path.is_file():
            import pandas as pd

            frame = pd.read_csv(path, sep="\t")
            sm = frame[classes].to_numpy().T
            fps = 1.0 / float(frame["offset"].iloc[0] - frame["onset"].iloc[0])
        else:
            fs = scorer.frame_scores(resolve_audio(manifest, r), classes)
            sm = scorer.smoothed(fs) if smooth else fs.scores
            fps = fs.fps
            T = sm.shape[1]
            bounds = np.minimum(np.arange(T + 1) / fps, max(r.duration, T / fps))
            lines = ["onset\toffset\t" + "\t".join(classes)]
            lines += [f"{bounds[j]:.4f}\t{bounds[j + 1]:.4f}\t" + "\t".join(f"{v:.5f}" for v in sm[:, j])
                      for j in range(T)]
            tmp = path.with_suffix(".tmp")
            tmp.write_text("\n".join(lines) + "\n")
            tmp.replace(path)          # a crash never leaves a half-written score file
        lab = frame_labels([(e.query, e.start, e.end) for e in r.events], classes, sm.shape[1], fps)
        all_s.append(sm.ravel())
        all_l.append(lab.ravel())
    s, l = np.concatenate(all_s), np.concatenate(all_l)
    return {"classes": classes, "ids": [r.id for r in recs], "frame_auroc": auroc(s, l), "n_frames": int(s.size)}


SCORE_FILES_INFO = "score_files.json"


def _same_post_processing(out_dir: Path, sdir: Path, post: dict) -> None:
    """A resumed directory must not mix raw and filtered score files (their metrics would be
    neither); what was applied is recorded beside them."""
    info = out_dir / SCORE_FILES_INFO
    before = json.loads(info.read_text()) if info.is_file() else None
    if before != post and any(sdir.glob("*.tsv")):
        was = "an unrecorded filter (written before score_files.json)" if before is None else \
            f"median_seconds={before.get('median_seconds')}"
        raise ValueError(f"{sdir}: its score files were written with {was}, this run writes "
                         f"median_seconds={post['median_seconds']}; use another --out")
    info.write_text(json.dumps(post, sort_keys=True) + "\n")


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: logistic regression y ~ sigmoid(a z + b). A tiny L2 on ``a`` only (C=1000,
    i.e. 0.0005 a^2 beside the summed log-loss) keeps it finite on separable data."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        raise ValueError(f"calibration needs both present and absent (clip, class) pairs; got {y.size} "
                         f"{'present' if y.any() else 'absent'} only")
    lr = LogisticRegression(C=1000.0, tol=1e-10, max_iter=1000).fit(np.asarray(z, np.float64).reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def fit_existence_calibration(scorer, manifest: str | Path, *, split: str | None = "val",
                              limit: int | None = 200, progress: bool = True) -> dict:
    """Platt-scale ``exists`` on held-out data: for every (clip, class of the manifest), the
    peak frame score (filtered by the scorer's ``exists_median_seconds``) vs whether the class
    occurs in the clip. Returns {"a", "b", "n",
    "positive_rate", "auroc"} to store under ``inference.existence_calibration``."""
    from tqdm import tqdm

    manifest = Path(manifest)
    recs = [r for r in iter_jsonl(manifest, ManifestRecord) if split is None or r.split in (None, split)]
    recs = recs[:limit] if limit else recs
    classes = sorted({e.query for r in recs for e in r.events})
    if not recs or not classes:
        raise ValueError(f"{manifest}: no labelled records to calibrate on")
    zs, ys, fr_s, fr_l = [], [], [], []
    for r in tqdm(recs, desc="calibrate", disable=not progress):
        fs = scorer.frame_scores(resolve_audio(manifest, r), classes)
        sm = scorer.smoothed(fs)
        fr_s.append(sm.ravel())
        fr_l.append(frame_labels([(e.query, e.start, e.end) for e in r.events], classes, sm.shape[1], fs.fps).ravel())
        peak = scorer.smoothed(fs, scorer.exists_median_seconds).max(axis=1).clip(1e-6, 1 - 1e-6)
        zs.append(np.log(peak / (1 - peak)))
        present = {e.query for e in r.events}
        ys.append(np.array([c in present for c in classes], dtype=np.float64))
    z, y = np.concatenate(zs), np.concatenate(ys)
    a, b = _platt(z, y)
    # the event threshold: best frame F1 of the smoothed scores over a grid
    s_, l_ = np.concatenate(fr_s), np.concatenate(fr_l).astype(bool)
    best = (0.0, 0.5)
    for thr in np.round(np.arange(0.02, 0.96, 0.02), 2):
        pred = s_ > thr
        tp = np.sum(pred & l_)
        f1 = 2 * tp / max(1, pred.sum() + l_.sum())
        best = max(best, (float(f1), float(thr)))
    return {"a": a, "b": b, "n": int(y.size), "positive_rate": float(y.mean()), "auroc": auroc(z, y),
            "frame_threshold": best[1], "frame_f1": best[0]}


CANDIDATE_RELS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


def fit_decision_thresholds(scorer, queries: str | Path, manifest: str | Path, *, keep_positives: float = 0.95,
                            progress: bool = True, rels=CANDIDATE_RELS, top_k: int = 3,
                            peak_ratio: float = 0.5) -> dict:
    """The existence decisions that travel with a checkpoint, chosen on held-out positive and
    negative queries (e.g. the needle val split):

    * ``exists_threshold``: the ``exists`` probability above which the scorer alone says "yes"
      (the best existence F1 on these queries; ties go to the higher threshold);
    * ``absent_below``: the highest threshold that still keeps ``keep_positives`` of the positive
      queries above it, so a veto below it is rarely wrong (the grounder's verifier);
    * ``candidate_rel``: how far candidate windows grow around their peak (``Scorer.candidates``),
      the one of ``rels`` whose answer has the highest mean IoU with the true windows of the
      positive queries (ties go to the larger value). The answer is what ``scorer`` mode says:
      ``peak_windows`` of the ``top_k`` candidates (the pipeline's defaults), so a rel that merges
      two instances into one window, or splits one, pays for it. The best single candidate's
      mean IoU is reported beside it (``candidate_top1_iou``).

    The calibrated probability reflects the base rate of the data it was fitted on; these
    thresholds reflect the queries the product is asked, hence a separate, query-level fit."""
    from tqdm import tqdm

    from data_recipes.formats import QueryRecord

    queries, manifest = Path(queries), Path(manifest)
    recs = {r.id: r for r in iter_jsonl(manifest, ManifestRecord)}
    qs = list(iter_jsonl(queries, QueryRecord))
    missing = sorted({q.audio_id for q in qs} - set(recs))
    if missing:
        raise ValueError(f"{queries}: {len(missing)} audio id(s) not in {manifest} (first: {missing[0]})")
    by_audio: dict[str, list] = {}
    for q in qs:
        by_audio.setdefault(q.audio_id, []).append(q)
    from eval.metrics import iou

    from .scorer import peak_windows

    p, y = [], []
    ious = {float(r): [] for r in rels}
    answer_ious = {float(r): [] for r in rels}
    for aid, group in tqdm(by_audio.items(), desc="decision thresholds", disable=not progress):
        emb = scorer.embed(resolve_audio(manifest, recs[aid]))
        for q in group:
            p.append(scorer.exists(emb, q.query))
            y.append(not q.negative)
            if not q.negative and q.windows:
                truth = [tuple(w) for w in q.windows]
                for r in ious:
                    cands = scorer.candidates(emb, q.query, k=top_k, rel=r)
                    ious[r].append(iou([tuple(cands[0][:2])], truth) if cands else 0.0)
                    answer = peak_windows(cands, peak_ratio)
                    answer_ious[r].append(iou([w[:2] for w in answer], truth) if answer else 0.0)
    p, y = np.asarray(p), np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        raise ValueError(f"{queries}: needs both positive and negative queries to choose thresholds")
    best = (-1.0, 0.5)
    for thr in np.unique(np.round(p, 4)):
        pred = p >= thr
        tp = np.sum(pred & y)
        f1 = 2 * tp / max(1, pred.sum() + y.sum())
        best = max(best, (float(f1), float(thr)))
    keep = float(np.quantile(p[y], 1.0 - keep_positives))
    mean_iou = {r: float(np.mean(v)) for r, v in ious.items() if v}
    answer_iou = {r: float(np.mean(v)) for r, v in answer_ious.items() if v}
    rel = max(answer_iou, key=lambda r: (round(answer_iou[r], 6), r)) if answer_iou else 0.5
    return {"exists_threshold": best[1], "exists_f1": round(best[0], 4), "absent_below": round(keep, 4),
            "candidate_rel": rel, "candidate_answer_iou": {str(r): round(v, 4) for r, v in answer_iou.items()},
            "candidate_top1_iou": {str(r): round(v, 4) for r, v in mean_iou.items()},
            "answer_rule": {"top_k": top_k, "peak_ratio": peak_ratio},
            "keep_positives": keep_positives, "n_positive": int(y.sum()), "n_negative": int((~y).sum()),
            "auroc": auroc(p, y.astype(np.float64)), "queries": str(queries)}
