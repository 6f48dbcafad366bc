"""`earmark ask` and `earmark audit`: thin argument parsing over grounding.api / grounding.audit.

    earmark ask AUDIO "QUERY" ["QUERY" ...] [--json] [--plot out.png] [--mode auto|llm|scorer|fused]
                [--engine hf|vllm] [--grounder DIR] [--scorer DIR] [--absent-below P] ...
    earmark audit MANIFEST --out DIR [--split test] [--negatives-per-positive 1] [--limit N] [--resume]
                [--mode ...] [--engine ...] [--grounder DIR] [--scorer DIR]

Without --grounder/--scorer the embedded defaults of the package are used when they exist; with no
model at all the command fails with one message saying what is missing (it never makes an answer up).
The audit writes queries.jsonl, predictions.jsonl and answers.jsonl (appended as it goes; --resume
continues), scores them with `earmark eval score` run as a separate process (grounding does not
import eval), and writes audit.md (tables, plots, worst cases) and audit.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_PIPELINE_FLAGS = {  # flag -> (PipelineConfig field, type)
    "--verifier": ("verifier", str), "--absent-below": ("absent_below", float),
    "--present-above": ("present_above", float), "--scorer-threshold": ("scorer_threshold", float),
    "--event-threshold": ("event_threshold", float), "--top-k": ("top_k", int), "--snap-iou": ("snap_iou", float),
    "--drop-below": ("drop_below", float), "--crop-seconds": ("crop_seconds", float),
    "--hint": ("hint", str), "--window-fallback": ("window_fallback", str),
}


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", default="auto", choices=["auto", "llm", "scorer", "fused"],
                   help="llm: the grounder alone; scorer: the contrastive scorer alone; fused: both "
                        "(default auto: fused when both models exist, else the one that does)")
    p.add_argument("--engine", default="hf", choices=["hf", "vllm"], help="how the grounder's LLM runs (default hf)")
    p.add_argument("--grounder", help="grounder checkpoint dir (default: the embedded one)")
    p.add_argument("--scorer", help="scorer checkpoint dir, or a shipped scorer: default (the embedded one), zeroshot, cnn")
    p.add_argument("--config", help="JSON file of grounding.pipeline.PipelineConfig fields")
    for flag, (field, typ) in _PIPELINE_FLAGS.items():
        p.add_argument(flag, dest=field, type=typ, default=None, help=f"PipelineConfig.{field}")


def _overrides(args) -> dict:
    cfg = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {path}: no such file")
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"--config {path}: must hold a JSON object of PipelineConfig fields")
        cfg.pop("mode", None)  # --mode decides
    for _, (field, _) in _PIPELINE_FLAGS.items():
        v = getattr(args, field, None)
        if v is not None:
            cfg[field] = v
    return cfg


def _quiet() -> None:
    """No weight-loading progress bars on a command's output (they are not the answer)."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        tlog.set_verbosity_error()
    except ImportError:
        pass


def _load(args, **extra):
    from .api import Grounder

    _quiet()

    return Grounder.from_pretrained(args.grounder, args.scorer, mode=args.mode, engine=args.engine,
                                    **(_overrides(args) | extra))


def _errors():
    from data_recipes.formats import FormatError

    return (ValueError, FileNotFoundError, FileExistsError, FormatError, RuntimeError)


# ---- ask ------------------------------------------------------------------------------------
def _ask_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="earmark ask", description="When does QUERY happen in AUDIO? (and does it at all)")
    p.add_argument("audio", help="audio file (any format soundfile/ffmpeg read; any rate/channels)")
    p.add_argument("queries", nargs="+", metavar="QUERY", help="what to look for, e.g. \"a dog barks\"")
    p.add_argument("--json", action="store_true", help="print the answers as JSON")
    p.add_argument("--plot", help="write a PNG: the scorer's curve and the answered windows")
    _model_args(p)
    return p


def ask_main(argv: list[str] | None = None) -> int:
    args = _ask_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        from data_recipes.audio import audio_info

        from .prompts import clean_query

        audio_info(args.audio)  # a missing or unreadable file fails before any model loads
        for q in args.queries:
            clean_query(q)
        g = _load(args)
        answers = g.ask_many(args.audio, args.queries)
        if args.plot:
            plot_answers(answers, args.plot, title=Path(args.audio).name)
    except _errors() as exc:
        print(f"earmark ask: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"audio": args.audio, **g.describe(), "answers": [a.to_dict() for a in answers]}, indent=2))
    else:
        print(format_answers(args.audio, g, answers))
    if args.plot:
        print(f"plot: {args.plot}", file=sys.stderr if args.json else sys.stdout)
    g.close()
    return 0


def format_answers(audio, g, answers) -> str:
    d = answers[0].duration if answers else 0.0
    models = ", ".join(f"{k} {v}" for k, v in g.sources.items() if v)
    lines = [f"{audio} ({d:.2f} s) — mode {g.mode} ({models})"]
    for a in answers:
        score = "" if a.score is None else f" (score {a.score:.2f})"
        lines.append(f"\"{a.query}\": {'YES' if a.exists else 'NO'}{score}")
        for w in a.windows:
            lines.append(f"  {w.start:7.2f} – {w.end:7.2f} s   confidence {w.confidence:.2f}")
        if a.exists and not a.windows:
            lines.append("  (no window could be read from the answer)")
        if a.scorer:
            cands = ", ".join(f"{c[0]:.2f}–{c[1]:.2f} s ({c[2]:.2f})" for c in a.scorer["candidates"])
            lines.append(f"  scorer: p(present) {a.scorer['p_exists']:.2f}; its best windows {cands}")
        note = f"  decided by {a.decided_by}; answer read: {a.status}"
        if a.thresholds:
            note += f"; thresholds {json.dumps(a.thresholds, sort_keys=True)}"
        lines.append(note)
    if answers:
        lines.append(f"{answers[0].timings.get('total_ms', 0) / 1000:.2f} s for {len(answers)} "
                     f"quer{'y' if len(answers) == 1 else 'ies'}")
    return "\n".join(lines)


def plot_answers(answers, path, *, title: str = "") -> Path:
    """One row per query: the scorer's frame probability (when there is one), the answered windows
    shaded with their confidence, and the decision in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(answers)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.9 * n + 0.4), squeeze=False, sharex=True)
    for ax, a in zip(axes[:, 0], answers):
        if a.curve is not None:
            ax.plot(a.curve[0], a.curve[1], color="#4477aa", lw=1, label="scorer p(frame)")
        for w in a.windows:
            ax.axvspan(w.start, w.end, color="#cc6677", alpha=0.25 + 0.5 * min(1.0, max(0.0, w.confidence)))
            ax.text((w.start + w.end) / 2, 1.02, f"{w.confidence:.2f}", ha="center", va="bottom", fontsize=7)
        for k in ("absent_below", "scorer_threshold"):
            if k in a.thresholds and a.curve is not None:
                ax.axhline(a.thresholds[k], color="k", ls=":", lw=0.7)
        ax.set_xlim(0, a.duration)
        ax.set_ylim(0, 1.12)
        score = "" if a.score is None else f", score {a.score:.2f}"
        ax.set_title(f"\"{a.query[:80]}\": {'yes' if a.exists else 'no'}{score} ({a.mode}, {a.decided_by})", fontsize=9)
        ax.set_ylabel("p")
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---- audit ----------------------------------------------------------------------------------
def _audit_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="earmark audit", description="Hallucination audit: positive and negative "
                                "queries on a manifest, both stages, hallucination rate, accuracy, F1, per class")
    p.add_argument("manifest", help="manifest JSONL with event annotations")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--split", help="only records of this split (e.g. test)")
    p.add_argument("--negatives-per-positive", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N records")
    p.add_argument("--resume", action="store_true", help="continue OUT: skip queries already answered")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    _model_args(p)
    return p


def audit_main(argv: list[str] | None = None) -> int:
    args = _audit_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from .audit import (PREDICTIONS_FILE, QUERIES_FILE, AuditConfig, build_audit_queries, run_audit, summarise_audit,
                        write_audit_report)

    out = Path(args.out)
    try:
        cfg = AuditConfig(split=args.split, negatives_per_positive=args.negatives_per_positive, seed=args.seed,
                          limit=args.limit)
        records, queries = build_audit_queries(args.manifest, cfg)
        qpath = out / QUERIES_FILE
        if (out / PREDICTIONS_FILE).exists() and (out / PREDICTIONS_FILE).stat().st_size and not args.resume:
            raise FileExistsError(f"{out / PREDICTIONS_FILE} exists; pass --resume to continue it or choose another --out")
        if args.resume and qpath.is_file():
            from data_recipes.formats import QueryRecord, read_jsonl

            old = [q.to_dict() for q in read_jsonl(qpath, QueryRecord)]
            if old != [q.to_dict() for q in queries]:
                raise ValueError(f"{qpath}: the queries of this run differ from the stored ones (other manifest, "
                                 f"split, seed or limit?); use another --out")
        from data_recipes.formats import write_jsonl

        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(qpath, queries)
        extra = {"probe_ground": True}  # stage 2 for every query: how often would it invent windows?
        if "verifier" not in _overrides(args):
            # same answers as "skip", but the LLM is asked every query, so the audit can show what
            # each verifier threshold would give (audit.md "Verifier threshold")
            extra["verifier"] = "overrule"
        g = _load(args, **extra)
        counts = run_audit(g, args.manifest, records, queries, out, progress=not args.no_progress)
        g.close()
    except _errors() as exc:
        print(f"earmark audit: error: {exc}", file=sys.stderr)
        return 1
    eval_metrics, outcomes, note = _eval_score(out, qpath, args.manifest, plots=not args.no_plots)
    summary = summarise_audit(out, queries, eval_metrics, outcomes)
    inputs = {"manifest": args.manifest, "split": args.split, "mode": g.mode, **{k: v for k, v in g.sources.items()}}
    report = write_audit_report(out, summary, inputs=inputs, eval_note=note, plots=not args.no_plots)
    print(f"{counts['answered']} answered now ({counts['errors']} errors), {counts['skipped']} already done")
    print(f"hallucination rate {_pct(summary['hallucination_rate'])}, stage-2-alone hallucination "
          f"{_pct(summary['stage2_hallucination_rate'])}, accuracy pos {_pct(summary['accuracy_positive'])} / "
          f"neg {_pct(summary['accuracy_negative'])}, F1 {_pct(summary['f1'])}")
    print(f"report: {report}")
    return 0


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def _eval_score(out: Path, qpath: Path, manifest, *, plots: bool):
    """`earmark eval score` in a separate process; (metrics, outcomes, note for the report)."""
    eval_dir = out / "eval"
    cmd = [sys.executable, "-m", "eval.cli", "score", str(out / "predictions.jsonl"), "--queries", str(qpath),
           "--manifest", str(manifest), "--out", str(eval_dir)]
    if not plots:
        cmd.append("--no-plots")
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, None, f"not available (`earmark eval score` could not run: {exc})"
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, None, f"not available (`earmark eval score` failed: {tail[0]})"
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    outcomes = None
    if (eval_dir / "outcomes.jsonl").is_file():
        outcomes = [json.loads(x) for x in (eval_dir / "outcomes.jsonl").read_text().splitlines() if x.strip()]
    return metrics, outcomes, f"from `earmark eval score` ([eval/report.md](eval/report.md), eval/metrics.json)"


if __name__ == "__main__":
    sys.exit(ask_main())
