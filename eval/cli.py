"""`earmark eval ...`: thin argument parsing over the eval library.

    earmark eval QUERIES --manifest MANIFEST --predictor NAME [--predictor-arg K=V ...] --out DIR [--resume]
    earmark eval QUERIES --manifest MANIFEST --predictions FILE --out DIR
    earmark eval score PREDICTIONS --queries QUERIES [--manifest MANIFEST] --out DIR
    earmark eval sed SCORES_DIR_OR_TSV --manifest MANIFEST --out DIR [--median-filter 3]
    earmark eval predictors
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data_recipes.formats import FormatError

SUBCOMMANDS = ("score", "sed", "predictors")


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-missing", action="store_true",
                   help="score even when ids differ: a query without prediction counts as a wrong answer "
                        "(status 'missing'), predictions of unknown queries are ignored; both are listed")
    p.add_argument("--reparse", action="store_true",
                   help="re-read every stored raw answer with data_recipes.answers.parse_answer instead of trusting "
                        "the stored exists/windows/status")
    p.add_argument("--no-plots", action="store_true", help="write metrics.json and report.md only")


def build_run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="earmark eval",
        description="Run a predictor over a queries file (appending predictions as it goes, resumable) and "
                    "score it; or score an existing predictions file. Other forms: `earmark eval score`, "
                    "`earmark eval sed`, `earmark eval predictors`.")
    p.add_argument("queries", help="queries JSONL")
    p.add_argument("--manifest", required=True, help="manifest JSONL holding every queried audio file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--predictor", help="builtin (oracle, whole-clip, random), an entry point of group "
                                         "earmark.predictors, or module.path:attribute")
    src.add_argument("--predictions", help="score this existing predictions JSONL instead of running a predictor")
    p.add_argument("--predictor-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the predictor (value parsed as JSON when it can be); repeatable")
    p.add_argument("--out", required=True, help="output directory (predictions.jsonl, metrics.json, report.md, PNGs)")
    p.add_argument("--resume", action="store_true", help="continue OUT/predictions.jsonl: skip answered ids")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    _add_scoring_options(p)
    return p


def build_sub_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="earmark eval")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="score a predictions JSONL against its queries; write metrics and report")
    s.add_argument("predictions")
    s.add_argument("--queries", required=True)
    s.add_argument("--manifest", default=None, help="gives audio durations (timeline plots, --reparse clipping)")
    s.add_argument("--out", required=True)
    _add_scoring_options(s)
    d = sub.add_parser("sed", help="PSDS1/PSDS2/grounding PSDS, AUROC, mPAUC, collar F1 of frame scores")
    d.add_argument("scores", help="directory of <audio_id>.tsv score files in sed_scores_eval's format "
                                  "(header: onset, offset, one column per class), or one such file")
    d.add_argument("--manifest", required=True, help="ground truth: events of the scored audio ids")
    d.add_argument("--out", required=True)
    d.add_argument("--median-filter", type=int, default=None,
                   help="median filter length in frames applied to the scores first (odd; 1 = none; default 3 as "
                        "FLAM, the same as `earmark contrastive eval`)")
    d.add_argument("--collar-threshold", type=float, default=0.5, help="decision threshold of the collar F1")
    d.add_argument("--auroc-segment", type=float, default=None,
                   help="AUROC segment length in seconds (default: the scores' frame length)")
    d.add_argument("--drop-unscored-events", action="store_true",
                   help="ignore ground-truth events whose class is not a score column (default: error)")
    sub.add_parser("predictors", help="list the predictors `earmark eval --predictor` can load")
    return p


def _write_and_print(result, out: Path, inputs: dict, plots: bool) -> None:
    from .report import write_report

    paths = write_report(result, out, inputs=inputs, plots=plots)
    m = result.overall
    r1 = ", ".join(f"R1@{k} {_f(v)}" for k, v in m.r1.items())
    print(f"{m.n_queries} queries ({m.n_positive} positive, {m.n_negative} negative): mIoU {_f(m.miou)}, {r1}, "
          f"existence acc pos {_f(m.existence.positive)} / neg {_f(m.existence.negative)}, F1 {_f(m.f1.f1)}; "
          f"unanswered {m.n_unanswered}")
    print(f"report: {paths['report']}")


def _f(x) -> str:
    return "–" if x is None or x != x else f"{x:.1f}"


def _run(args) -> int:
    from .scoring import ScoringConfig, score_files

    out = Path(args.out)
    config = ScoringConfig(allow_missing=args.allow_missing, reparse=args.reparse)
    if args.predictions:
        pred_path = Path(args.predictions)
        inputs = {"queries": args.queries, "manifest": args.manifest, "predictions": str(pred_path)}
    else:
        from .predictors import load_predictor, parse_predictor_args
        from .runner import run_eval

        kwargs = parse_predictor_args(args.predictor_arg)
        predictor = load_predictor(args.predictor, **kwargs)
        summary = run_eval(args.queries, args.manifest, predictor, out, resume=args.resume,
                           progress=not args.no_progress,
                           identity={"predictor": args.predictor, "predictor_args": kwargs})
        print(f"{summary.n_answered} answered now ({summary.n_errors} errors), {summary.n_skipped} already done, "
              f"in {summary.seconds:.1f} s -> {summary.predictions_path}")
        pred_path = summary.predictions_path
        inputs = {"queries": args.queries, "manifest": args.manifest, "predictions": str(pred_path),
                  "predictor": args.predictor, "predictor_args": json.dumps(kwargs, sort_keys=True)}
    result = score_files(pred_path, args.queries, manifest_path=args.manifest, config=config)
    _write_and_print(result, out, inputs, plots=not args.no_plots)
    return 0


def _score(args) -> int:
    from .scoring import ScoringConfig, score_files

    config = ScoringConfig(allow_missing=args.allow_missing, reparse=args.reparse)
    result = score_files(args.predictions, args.queries, manifest_path=args.manifest, config=config)
    inputs = {"predictions": args.predictions, "queries": args.queries}
    if args.manifest:
        inputs["manifest"] = args.manifest
    _write_and_print(result, Path(args.out), inputs, plots=not args.no_plots)
    return 0


def _sed(args) -> int:
    from .postprocess import DEFAULT_MEDIAN_FILTER, check_filter_length, describe_median_filter
    from .sed_metrics import SedEvalConfig, evaluate_sed_files, plot_psd_roc

    n = check_filter_length(DEFAULT_MEDIAN_FILTER if args.median_filter is None else args.median_filter)
    config = SedEvalConfig(collar_threshold=args.collar_threshold, auroc_segment_length=args.auroc_segment,
                           unscored_events="drop" if args.drop_unscored_events else "error")
    metrics, frame_s = evaluate_sed_files(args.scores, args.manifest, median_filter=n, config=config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = metrics.to_dict()
    data["median_filter"] = n
    print(f"post-processing: {describe_median_filter(n, frame_s)} (--median-filter)")
    data["inputs"] = {"scores": args.scores, "manifest": args.manifest}
    (out / "sed_metrics.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    png = plot_psd_roc(metrics, out / "psd_roc.png")
    psds = ", ".join(f"{k} {v:.3f}" for k, v in metrics.psds.items())
    print(f"{metrics.n_audio} files, {len(metrics.classes)} classes ({len(metrics.classes_without_events)} without "
          f"events left out): {psds}; AUROC {metrics.auroc:.3f}, mPAUC {metrics.mpauc:.3f}, "
          f"collar F1 {metrics.collar_f1['macro']:.3f} (macro)")
    print(f"metrics: {out / 'sed_metrics.json'}; PSD-ROC: {png}")
    return 0


def _predictors(args) -> int:
    from .predictors import available_predictors

    for name in available_predictors():
        print(name)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        args = build_sub_parser().parse_args(argv)
        func = {"score": _score, "sed": _sed, "predictors": _predictors}[args.cmd]
    else:
        args = build_run_parser().parse_args(argv)
        func = _run
    try:
        return int(func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, FormatError) as exc:
        # FormatError / AudioError are ValueErrors that already name the file and line
        print(f"earmark eval: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
