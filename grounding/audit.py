"""Hallucination audit (SpotSound §4.2–4.3): does the model give windows for sounds that are not there?

:func:`build_audit_queries` turns a manifest into positive queries (each event query of a
recording, with its windows) and negative ones (sounds of the same manifest that share no content
word with any of the recording's positives, ``data_recipes.queries.sample_negative_queries``);
:func:`run_audit` answers them all with both stages — after a "no" the localisation stage is asked
anyway (``probe_ground``), so it measures how often the grounder *would* invent windows — appending
``predictions.jsonl`` (eval's format) and ``answers.jsonl`` (the full answers) as it goes
(resumable). :func:`summarise_audit` computes what the audit adds to eval's numbers: the
hallucination rates, who decided, parse statuses per stage, per-class hallucinations and the worst
cases; mIoU/R1/accuracy/two-stage F1 come from ``earmark eval score`` on the same files (run as a
separate process by the CLI: grounding does not import eval).
"""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from data_recipes.formats import (JsonlAppender, ManifestRecord, PredictionRecord, QueryRecord, merge_events,
                                  read_jsonl, resolve_audio)
from data_recipes.queries import normalize_query, sample_negative_queries

QUERIES_FILE, PREDICTIONS_FILE, ANSWERS_FILE = "queries.jsonl", "predictions.jsonl", "answers.jsonl"
# statuses that are real answers (as eval counts them): unparsed / error answers are wrong either way
ANSWERED = ("strict", "lenient", "repaired")


@dataclass
class AuditConfig:
    split: str | None = None           # only records of this split (None: all)
    negatives_per_positive: int = 1    # negatives per positive query (records without events: this many)
    seed: int = 0
    limit: int | None = None           # first N records (after the split filter)

    def __post_init__(self) -> None:
        if not isinstance(self.negatives_per_positive, int) or self.negatives_per_positive < 0:
            raise ValueError(f"negatives_per_positive must be an integer >= 0, got {self.negatives_per_positive!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"limit must be an integer >= 1, got {self.limit!r}")


def build_audit_queries(manifest, config: AuditConfig) -> tuple[list[ManifestRecord], list[QueryRecord]]:
    """(records, queries): positives ``<id>/pos<k>`` then negatives ``<id>/neg<k>`` per record.
    Deterministic given the seed and record id (a resumed run rebuilds the same queries)."""
    records = read_jsonl(manifest, ManifestRecord)
    if config.split is not None:
        records = [r for r in records if r.split == config.split]
        if not records:
            raise ValueError(f"{manifest}: no record has split {config.split!r}")
    if config.limit is not None:
        records = records[:config.limit]
    if not records:
        raise ValueError(f"{manifest}: no records")
    pool = sorted({e.query for r in records for e in r.events}, key=normalize_query)
    queries: list[QueryRecord] = []
    for r in records:
        by_query: dict[str, list] = defaultdict(list)
        for e in merge_events(r.events) if r.events else []:
            by_query[e.query].append((e.start, e.end))
        positives = list(by_query)
        for k, q in enumerate(positives):
            queries.append(QueryRecord(f"{r.id}/pos{k}", r.id, q, False, sorted(by_query[q])))
        n_neg = config.negatives_per_positive * max(1, len(positives))
        rng = random.Random(f"{config.seed}:{r.id}")
        for k, q in enumerate(sample_negative_queries(positives, pool, n_neg, rng)):
            queries.append(QueryRecord(f"{r.id}/neg{k}", r.id, q, True, []))
    return records, queries


def run_audit(grounder, manifest, records, queries: list[QueryRecord], out_dir, *, progress: bool = True) -> dict:
    """Answer every query not yet in ``out_dir``; append predictions and answers line by line.
    A file the pipeline refuses (bad audio, too long) gives ``error`` predictions for its queries
    and the run goes on. Returns counts of this call."""
    from tqdm import tqdm

    from .predictor import to_prediction
    from .prompts import clean_query

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine = f"earmark-{grounder.mode}"
    by_audio: dict[str, list[QueryRecord]] = defaultdict(list)
    rec_by_id = {r.id: r for r in records}
    n_new = n_err = 0
    with JsonlAppender(out / PREDICTIONS_FILE, PredictionRecord) as preds, JsonlAppender(out / ANSWERS_FILE) as ans:
        for q in queries:
            if q.id not in preds.done:
                by_audio[q.audio_id].append(q)
        bar = tqdm(total=len(queries), initial=len(queries) - sum(map(len, by_audio.values())), unit="query",
                   desc="earmark audit", disable=not progress, dynamic_ncols=True)
        for audio_id, qs in by_audio.items():
            path = resolve_audio(manifest, rec_by_id[audio_id])
            good, bad = [], []
            for q in qs:
                try:
                    clean_query(q.query)
                    good.append(q)
                except ValueError as exc:
                    bad.append((q, f"ValueError: {exc}"))
            answers = []
            if good:
                try:
                    answers = grounder.ask_many(path, [q.query for q in good])
                except (ValueError, RuntimeError, OSError) as exc:  # this file only; keep going
                    bad += [(q, f"{type(exc).__name__}: {exc}") for q in good]
                    good = []
            ms = (answers[0].timings.get("total_ms", 0.0) / max(1, len(good))) if answers else 0.0
            for q, a in zip(good, answers):
                if q.id not in ans.done:
                    ans.write({"id": q.id, "audio_id": q.audio_id, "negative": q.negative, **a.to_dict()})
                preds.write(to_prediction(q, a, engine=engine, ms=ms))
                n_new += 1
            for q, why in bad:
                preds.write(PredictionRecord.for_query(q, exists=False, windows=[], raw=why[:500], engine=engine,
                                                       status="error"))
                n_new += 1
                n_err += 1
            bar.update(len(qs))
        bar.close()
    return {"answered": n_new, "errors": n_err, "skipped": len(queries) - n_new}


def _rate(k: int, n: int) -> float | None:
    return None if n == 0 else round(100.0 * k / n, 2)


def summarise_audit(out_dir, queries: list[QueryRecord], eval_metrics: dict | None = None,
                    eval_outcomes: list[dict] | None = None, n_worst: int = 10) -> dict:
    """The audit's own numbers (percentages 0-100), from the files in ``out_dir``."""
    out = Path(out_dir)
    preds = {p.id: p for p in read_jsonl(out / PREDICTIONS_FILE, PredictionRecord)}
    answers = {}
    if (out / ANSWERS_FILE).is_file():
        for line in (out / ANSWERS_FILE).read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                answers[d["id"]] = d
    neg = [q for q in queries if q.negative]
    pos = [q for q in queries if not q.negative]
    missing = [q.id for q in queries if q.id not in preds]
    halluc = [q for q in neg if q.id in preds and preds[q.id].exists and preds[q.id].windows]
    false_yes = [q for q in neg if q.id in preds and preds[q.id].exists]
    # stage 2 asked directly: windows in the final answer, or in the probe after a "no"
    probed = [q for q in neg if q.id in answers and (answers[q.id].get("probe") is not None or answers[q.id]["exists"])]
    probe_halluc = [q for q in probed if answers[q.id]["windows"] or (answers[q.id].get("probe") or {}).get("windows")]
    status = Counter(p.status for p in preds.values())
    stage_status = {st: dict(Counter((a.get("llm_status") or {}).get(st) or "not asked" for a in answers.values()))
                    for st in ("exist", "ground")}
    decided = dict(Counter(a.get("decided_by") for a in answers.values()))
    # per class (the query text): counts, accuracy on positives / negatives, hallucinations
    classes: dict[str, dict] = defaultdict(lambda: {"n_pos": 0, "pos_yes": 0, "n_neg": 0, "neg_no": 0, "halluc": 0})
    for q in queries:
        p = preds.get(q.id)
        if p is None:
            continue
        c = classes[q.query]
        if q.negative:
            c["n_neg"] += 1
            c["neg_no"] += int(not p.exists and p.status in ANSWERED)
            c["halluc"] += int(p.exists and bool(p.windows))
        else:
            c["n_pos"] += 1
            c["pos_yes"] += int(p.exists and p.status in ANSWERED)
    per_class = {}
    eval_pc = (eval_metrics or {}).get("per_class", {})
    for name, c in sorted(classes.items(), key=lambda kv: (-(kv[1]["n_pos"] + kv[1]["n_neg"]), kv[0])):
        per_class[name] = {"n_pos": c["n_pos"], "acc_pos": _rate(c["pos_yes"], c["n_pos"]), "n_neg": c["n_neg"],
                           "acc_neg": _rate(c["neg_no"], c["n_neg"]), "hallucination": _rate(c["halluc"], c["n_neg"]),
                           "miou": (eval_pc.get(name) or {}).get("miou")}
    worst_halluc = sorted(halluc, key=lambda q: -(preds[q.id].score or 0.0))[:n_worst]
    worst_pos = []
    if eval_outcomes:
        worst_pos = sorted((o for o in eval_outcomes if not o["negative"]), key=lambda o: (o["iou"], o["id"]))[:n_worst]
    overall = (eval_metrics or {}).get("overall") or {}
    return {
        "verifier_sweep": verifier_sweep(list(answers.values())),
        "n_queries": len(queries), "n_positive": len(pos), "n_negative": len(neg), "n_missing": len(missing),
        "hallucination_rate": _rate(len(halluc), len(neg)),
        "false_yes_rate": _rate(len(false_yes), len(neg)),
        "stage2_hallucination_rate": _rate(len(probe_halluc), len(probed)),
        "stage2_probed": len(probed),
        "accuracy_positive": (overall.get("existence") or {}).get("positive"),
        "accuracy_negative": (overall.get("existence") or {}).get("negative"),
        "f1": (overall.get("f1") or {}).get("f1"),
        "miou": overall.get("miou"), "r1": overall.get("r1"),
        "status_counts": dict(sorted(status.items())), "stage_status": stage_status, "decided_by": decided,
        "thresholds": next(iter(answers.values()), {}).get("thresholds", {}),
        "per_class": per_class,
        "worst_hallucinations": [{"id": q.id, "audio_id": q.audio_id, "query": q.query, "score": preds[q.id].score,
                                  "windows": [list(w) for w in preds[q.id].windows],
                                  "raw": (answers.get(q.id) or {}).get("raw")} for q in worst_halluc],
        "worst_positives": [{"id": o["id"], "audio_id": o["audio_id"], "query": o["query"], "iou": o["iou"],
                             "status": o["status"], "windows": [list(w) for w in preds[o["id"]].windows]
                             if o["id"] in preds else None,
                             "true": next((list(map(list, q.windows)) for q in pos if q.id == o["id"]), None)}
                            for o in worst_pos],
    }


SWEEP = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)


def verifier_sweep(answers: list[dict], grid=SWEEP) -> list[dict] | None:
    """Existence accuracy on positives / negatives had the verifier's ``absent_below`` been each
    value of ``grid`` (fused answers made with ``verifier="overrule"``: the LLM was asked every
    query, so its own answer is known even where the scorer vetoed). None when not applicable."""
    from .prompts import parse_existence

    rows = [a for a in answers if a.get("mode") == "fused" and a.get("scorer") and a.get("raw", {}).get("exist") is not None]
    if not rows or len(rows) < len(answers):
        return None
    out = []
    for t in grid:
        n = {True: 0, False: 0}
        right = {True: 0, False: 0}
        for a in rows:
            llm_yes = parse_existence(a["raw"]["exist"])[0] is True
            yes = llm_yes and a["scorer"]["p_exists"] >= t
            pos = not a["negative"]
            n[pos] += 1
            right[pos] += int(yes == pos)
        out.append({"absent_below": t, "acc_pos": _rate(right[True], n[True]), "acc_neg": _rate(right[False], n[False])})
    return out


def _f(x, d: int = 1) -> str:
    return "–" if x is None else (f"{x:.{d}f}" if isinstance(x, float) else str(x))


def write_audit_report(out_dir, summary: dict, *, inputs: dict, eval_note: str, plots: bool = True) -> Path:
    """``audit.json`` (every number) and ``audit.md`` (tables, plots, worst cases)."""
    out = Path(out_dir)
    (out / "audit.json").write_text(json.dumps(summary | {"inputs": inputs}, indent=2, sort_keys=True) + "\n")
    s = summary
    lines = ["# earmark audit", "", f"Inputs: {json.dumps(inputs, sort_keys=True)}", "",
             f"{s['n_queries']} queries: {s['n_positive']} positive, {s['n_negative']} negative "
             f"(sounds of this manifest that share no content word with the recording's events); "
             f"{s['n_missing']} not answered yet.", "",
             "| measure | value |", "|---|---|",
             f"| hallucination rate (negatives answered with windows) | {_f(s['hallucination_rate'])} % |",
             f"| false \"yes\" on negatives | {_f(s['false_yes_rate'])} % |",
             f"| stage 2 asked directly on negatives: gives windows | {_f(s['stage2_hallucination_rate'])} % "
             f"(of {s['stage2_probed']}) |",
             f"| existence accuracy, positives | {_f(s['accuracy_positive'])} % |",
             f"| existence accuracy, negatives | {_f(s['accuracy_negative'])} % |",
             f"| two-stage F1 (TP = yes and IoU > 0.3) | {_f(s['f1'])} |",
             f"| mIoU (positives) | {_f(s['miou'])} |", "",
             f"Accuracy, F1 and mIoU: {eval_note}", "",
             f"Thresholds: `{json.dumps(s['thresholds'], sort_keys=True)}`; decided by: `{json.dumps(s['decided_by'], sort_keys=True)}`",
             "", f"Prediction statuses: `{json.dumps(s['status_counts'], sort_keys=True)}`; LLM answers per stage: "
             f"`{json.dumps(s['stage_status'], sort_keys=True)}`", ""]
    if plots:
        _plot_scores(out, s)
        _plot_classes(out, s)
        lines += ["![existence scores](scores.png)", "", "![per class](classes.png)", ""]
    if s.get("verifier_sweep"):
        lines += ["## Verifier threshold", "", "Existence accuracy had the scorer vetoed every query whose "
                  "p(present) is below `absent_below` (the LLM's own answers were recorded for every query):", "",
                  "| absent_below | acc pos | acc neg |", "|---|---|---|"]
        lines += [f"| {r['absent_below']:g} | {_f(r['acc_pos'])} | {_f(r['acc_neg'])} |" for r in s["verifier_sweep"]]
        lines.append("")
    lines += ["## Per class", "", "| class | pos | acc pos | mIoU | neg | acc neg | hallucination |", "|---|---|---|---|---|---|---|"]
    for name, c in list(s["per_class"].items())[:100]:
        cell = " ".join(name.split()).replace("|", "\\|")[:60]
        lines.append(f"| {cell} | {c['n_pos']} | {_f(c['acc_pos'])} | {_f(c['miou'])} | {c['n_neg']} | "
                     f"{_f(c['acc_neg'])} | {_f(c['hallucination'])} |")
    lines += ["", "## Worst hallucinations (negatives answered with windows, most confident first)", ""]
    for w in s["worst_hallucinations"] or [{"query": None}]:
        if w["query"] is None:
            lines.append("None.")
            break
        lines.append(f"- `{w['id']}` \"{w['query']}\" score {_f(w['score'], 3)} windows {w['windows']} raw {json.dumps(w['raw'])}")
    lines += ["", "## Worst positives (lowest IoU)", ""]
    for w in s["worst_positives"] or [{"query": None}]:
        if w["query"] is None:
            lines.append("None (or eval's per-query outcomes are not available).")
            break
        lines.append(f"- `{w['id']}` \"{w['query']}\" IoU {_f(w['iou'], 3)} ({w['status']}): predicted {w['windows']}, "
                     f"true {w['true']}")
    (out / "audit.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / "audit.md"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scores_figure(pos: list[float], neg: list[float], thresholds: dict):
    """Histogram of existence scores; each threshold is a line named in the legend (with its value)
    and the legend sits above the axes, so no label can cover bars or another label."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    bins = [i / 20 for i in range(21)]
    ax.hist([pos, neg], bins=bins, label=["positive queries", "negative queries"], color=["#4477aa", "#cc6677"])
    styles = iter(["--", ":", "-."])
    for k, v in (thresholds or {}).items():
        if isinstance(v, float) and k in ("absent_below", "present_above", "scorer_threshold"):
            ax.axvline(v, color="k", ls=next(styles), lw=0.9, label=f"{k} = {v:.2f}")
    ax.set_xlabel("existence score")
    ax.set_ylabel("queries")
    fig.legend(loc="outside upper center", ncol=2, fontsize=8, frameon=False)
    return fig


def classes_figure(items: list[tuple[str, dict]]):
    """Per-class accuracy / hallucination bars; the legend sits above the axes (bars reach 100 %)."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.3 * max(4, len(items)) + 1.4), layout="constrained")
    y = np.arange(len(items))
    for k, (key, color, label) in enumerate((("acc_pos", "#4477aa", "acc pos"), ("acc_neg", "#228833", "acc neg"),
                                            ("hallucination", "#cc6677", "hallucination"))):
        ax.barh(y + (k - 1) * 0.27, [c[key] or 0 for _, c in items], height=0.27, color=color, label=label)
    ax.set_yticks(y, [n[:40] for n, _ in items], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")
    fig.legend(loc="outside upper center", ncol=3, fontsize=7, frameon=False)
    return fig


def _plot_scores(out: Path, s: dict) -> None:
    preds = read_jsonl(out / PREDICTIONS_FILE, PredictionRecord)
    pos = [p.score for p in preds if not p.negative and p.score is not None]
    neg = [p.score for p in preds if p.negative and p.score is not None]
    fig = scores_figure(pos, neg, s.get("thresholds") or {})
    fig.savefig(out / "scores.png", dpi=100)
    _pyplot().close(fig)


def _plot_classes(out: Path, s: dict, top: int = 20) -> None:
    fig = classes_figure(list(s["per_class"].items())[:top])
    fig.savefig(out / "classes.png", dpi=100)
    _pyplot().close(fig)
