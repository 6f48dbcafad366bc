"""`earmark ask` and `earmark audit`: thin argument parsing over grounding.api / grounding.audit.

    earmark ask AUDIO "QUERY" ["QUERY" ...] [--format text|json|jsonl|tsv|csv|audacity|srt|vtt] [--plot out.png]
                [--mode auto|llm|scorer|fused] [--engine hf|vllm] [--grounder DIR] [--scorer DIR] [--absent-below P] ...
    earmark ask -q "QUERY" [-q ...] FILE|FOLDER|GLOB ... [--out answers.jsonl [--resume]] [--format ...]
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


def _flags() -> dict:
    """flag -> (PipelineConfig field, argparse type, choices). Numbers are bounded here so that an
    absurd value is a usage error naming the flag, not a failure (or a huge allocation) later."""
    from data_recipes.batch import bounded

    prob = bounded(float, 0.0, 1.0)
    return {"--verifier": ("verifier", str, ("skip", "overrule", "off")), "--absent-below": ("absent_below", prob, None),
            "--present-above": ("present_above", prob, None), "--scorer-threshold": ("scorer_threshold", prob, None),
            "--event-threshold": ("event_threshold", prob, None), "--top-k": ("top_k", bounded(int, 1, 100), None),
            "--snap-iou": ("snap_iou", prob, None), "--drop-below": ("drop_below", prob, None),
            "--crop-seconds": ("crop_seconds", bounded(float, 1.0, 3600.0, unit="seconds"), None),
            "--hint": ("hint", str, ("auto", "off")), "--window-fallback": ("window_fallback", str, ("scorer", "off"))}


# the modes each option is used in: given in another mode it would be silently ignored, so it is refused
_USED_IN = {"engine": ("llm", "fused"), "verifier": ("fused",), "absent_below": ("fused",),
            "present_above": ("fused",), "snap_iou": ("fused",), "drop_below": ("fused",),
            "window_fallback": ("fused",), "crop_seconds": ("fused",), "hint": ("fused",),
            "scorer_threshold": ("scorer",), "event_threshold": ("scorer", "fused"), "top_k": ("scorer", "fused")}


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", default="auto", choices=["auto", "llm", "scorer", "fused"],
                   help="llm: the grounder alone; scorer: the contrastive scorer alone; fused: both "
                        "(default auto: fused when both models exist, else the one that does)")
    p.add_argument("--engine", default=None, choices=["hf", "vllm"],
                   help="how the grounder's LLM runs (default hf; an error in scorer mode, which has no LLM)")
    p.add_argument("--grounder", help="grounder checkpoint dir (default: the embedded one)")
    p.add_argument("--scorer", help="scorer checkpoint dir, or a shipped scorer: default (the embedded one), zeroshot, cnn")
    p.add_argument("--config", help="JSON file of grounding.pipeline.PipelineConfig fields")
    for flag, (field, typ, choices) in _flags().items():
        modes = "/".join(_USED_IN.get(field, ()))
        p.add_argument(flag, dest=field, type=typ, choices=choices, default=None,
                       help=f"PipelineConfig.{field}" + (f" (mode {modes})" if modes else ""))


class UsageError(ValueError):
    """Options that contradict each other (exit 2, as argparse's usage errors)."""


def _check_mode_options(args, mode: str) -> None:
    """Refuse options the answering mode would ignore (e.g. --engine vllm in scorer mode)."""
    unused = [f"--{k.replace('_', '-')} {getattr(args, k)}" for k, modes in _USED_IN.items()
              if getattr(args, k, None) is not None and mode not in modes]
    if unused:
        how = "" if args.mode == mode else " (auto chose it: that is the model there is)"
        raise UsageError(f"{', '.join(unused)}: not used in mode {mode}{how}; drop "
                         f"{'it' if len(unused) == 1 else 'them'} or choose a mode that uses "
                         f"{'it' if len(unused) == 1 else 'them'} with --mode")


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
    for field, _, _ in _flags().values():
        v = getattr(args, field, None)
        if v is not None:
            cfg[field] = v
    return cfg


def _quiet() -> None:
    """No weight-loading progress bars on a command's output (they are not the answer)."""
    from data_recipes.batch import quiet_loading

    quiet_loading()


def _load(args, **extra):
    from .api import Grounder

    _quiet()
    if args.mode != "auto":
        _check_mode_options(args, args.mode)  # before the (slow) model load
    g = Grounder.from_pretrained(args.grounder, args.scorer, mode=args.mode, engine=args.engine or "hf",
                                 **(_overrides(args) | extra))
    try:
        _check_mode_options(args, g.mode)
    except UsageError:
        g.close()
        raise
    return g


def _errors():
    from data_recipes.formats import FormatError

    return (ValueError, FileNotFoundError, FileExistsError, FormatError, RuntimeError)


# ---- ask ------------------------------------------------------------------------------------
_ASK_USAGE = """\
earmark ask AUDIO QUERY [QUERY ...] [options]                    one recording
       earmark ask -q QUERY [-q QUERY ...] INPUT [INPUT ...] [options]  a batch"""

_ASK_EPILOG = """\
inputs and queries: without -q/--query the first word is the recording and the rest are the
queries; with -q every positional word is an INPUT: an audio file, a folder (walked recursively
for audio files) or a glob such as 'clips/**/*.wav' (quote it). The models load once for all.

batch: --out FILE.jsonl appends one line per (recording, query) answer as it goes (after a header
line naming the models and settings); --resume skips what it already holds and refuses a file
made with other settings. A recording that fails is reported in one line and the batch goes on;
the exit code is 1 when any failed.

formats (--format): text (default), json, jsonl (one answer per line), tsv (DCASE/sed_scores_eval
events: filename onset offset event_label), csv (the same + confidence), audacity (label track),
srt, vtt (subtitle cues). Event formats list the windows of "yes" answers; audacity, srt and vtt
describe one recording.

exit codes: 0 done, 1 an input, model or recording failed, 2 usage error, 130 interrupted."""


def _ask_parser() -> argparse.ArgumentParser:
    from data_recipes.answer_formats import FORMATS

    p = argparse.ArgumentParser(prog="earmark ask", usage=_ASK_USAGE, epilog=_ASK_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="When does QUERY happen in AUDIO? (and does it at all)")
    p.add_argument("words", nargs="+", metavar="AUDIO/QUERY/INPUT",
                   help="AUDIO QUERY... (any format soundfile/ffmpeg read; any rate/channels), or with -q the inputs")
    p.add_argument("-q", "--query", action="append", dest="query_opts", metavar="QUERY",
                   help="what to look for, e.g. \"a dog barks\" (repeat for several); makes every positional an input")
    p.add_argument("--format", choices=FORMATS, default=None, help="output format on stdout (default text)")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--out", help="append the answers to this JSONL file as they are made (resumable)")
    p.add_argument("--resume", action="store_true", help="continue --out: skip the answers it already holds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: on a terminal, for batches)")
    p.add_argument("--plot", help="write a PNG: the scorer's curve and the answered windows (one recording)")
    _model_args(p)
    return p


def _inputs_and_queries(p, args) -> tuple[list[str], list[str]]:
    if args.query_opts:
        return list(args.words), list(args.query_opts)
    if len(args.words) < 2:
        p.error("give at least one QUERY after AUDIO (or the queries with -q/--query)")
    return args.words[:1], args.words[1:]


def _output_format(p, args) -> str:
    if args.json and args.format not in (None, "json"):
        p.error(f"--json is --format json; it contradicts --format {args.format}")
    if args.resume and not args.out:
        p.error("--resume continues an --out file; give --out")
    return "json" if args.json else (args.format or "text")


def ask_main(argv: list[str] | None = None) -> int:
    p = _ask_parser()
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    inputs, queries = _inputs_and_queries(p, args)
    fmt = _output_format(p, args)
    try:
        job = _AskJob(args, inputs, queries, fmt)
    except UsageError as exc:
        print(f"earmark ask: error: {exc}", file=sys.stderr)
        return 2
    except _errors() as exc:
        print(f"earmark ask: error: {exc}", file=sys.stderr)
        return 1
    return job.run()


class _AskJob:
    """One `earmark ask` run: inputs checked, models loaded once, every recording answered."""

    def __init__(self, args, inputs: list[str], queries: list[str], fmt: str):
        from data_recipes.answer_formats import ONE_RECORDING_FORMATS
        from data_recipes.audio import audio_info
        from data_recipes.batch import check_out, check_readable, expand_inputs

        from .prompts import clean_query

        self.args, self.fmt = args, fmt
        self.files = expand_inputs(inputs)
        # the old one-recording form keeps its output (one JSON document about one file)
        self.single = len(inputs) == 1 and len(self.files) == 1 and Path(inputs[0]).is_file()
        if self.single:  # (a batch reports each unreadable recording and goes on)
            check_readable(self.files)
            audio_info(self.files[0])  # a missing or unreadable file fails before any model loads
        if len(self.files) > 1 and fmt in ONE_RECORDING_FORMATS:
            raise UsageError(f"--format {fmt} describes one recording, and there are {len(self.files)}; "
                             f"use tsv, csv or jsonl for a batch")
        if len(self.files) > 1 and args.plot:
            raise UsageError(f"--plot draws one recording, and there are {len(self.files)}")
        self.queries = [clean_query(q) for q in queries]
        if args.out:
            check_out(args.out, resume=args.resume)
        self.g = _load(args)
        self.log = None
        if args.out:
            from data_recipes.batch import AnswerLog

            try:
                self.log = AnswerLog(args.out, {"command": "ask", **self.g.describe()}, resume=args.resume)
            except BaseException:  # the engine may hold workers (vllm): release them on any way out
                self.g.close()
                raise
        self.failed: list[str] = []

    def run(self) -> int:
        from data_recipes.batch import answer_batch

        try:
            return answer_batch(self.files, self._answer, prog="earmark ask", fmt=self.fmt, document=self._document,
                                single=self.single, quiet=self.args.no_progress, failed=self.failed, log=self.log,
                                errors=_errors() + (OSError,))
        finally:
            self.g.close()

    def _answer(self, audio: str, writer) -> None:
        from data_recipes.answer_formats import AnswerRow
        from data_recipes.batch import check_readable

        check_readable([audio])
        todo = [q for q in self.queries if self.log is None or not self.log.done(audio, q)]
        if not todo:
            return
        answers = self.g.ask_many(audio, todo)
        if self.args.plot:
            plot_answers(answers, self.args.plot, title=Path(audio).name)
        rows = []
        for a in answers:
            record = answer_record(a, self._frame_threshold())
            rows.append(AnswerRow(audio, a.query, a.exists, [w.to_list() for w in a.windows], record))
            if self.log is not None:
                self.log.write(audio, a.query, record)
        if writer is None:
            _say(format_answers(audio, self.g, answers, frame_threshold=self._frame_threshold()))
        else:
            writer.write(audio, rows)
        if self.args.plot:
            print(f"plot: {self.args.plot}", file=sys.stdout if writer is None else sys.stderr)

    def _frame_threshold(self) -> float | None:
        sc = self.g.pipeline.scorer
        if sc is None:
            return None
        return self.g.config.event_threshold if self.g.config.event_threshold is not None else sc.threshold

    def _document(self, files: list[dict]) -> dict:
        if self.single and len(files) == 1:
            return {"audio": files[0]["audio"], **self.g.describe(), "answers": files[0]["answers"]}
        return {**self.g.describe(), "files": files, "failed": list(self.failed)}


def _say(text: str) -> None:
    """Print beside a progress bar without tearing it."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stdout)


def count_events(curve, threshold: float) -> int:
    """Intervals where the (median-filtered) frame probability is above ``threshold``: the
    scorer's events, as ``Scorer.events`` finds them on the same curve."""
    import numpy as np

    above = np.asarray(curve[1]) > threshold
    return int(np.count_nonzero(np.diff(above.astype(np.int8), prepend=0) == 1))


def answer_record(a, frame_threshold: float | None) -> dict:
    """The JSON form of one answer: Answer.to_dict() plus how many events the scorer hears in all
    (``events_total``; the windows are at most top_k of them) and notes about the query."""
    from data_recipes.answer_formats import query_notes

    d = a.to_dict()
    if a.curve is not None and frame_threshold is not None:
        d["events_total"] = count_events(a.curve, frame_threshold)
        d["event_threshold"] = round(float(frame_threshold), 4)
    d["notes"] = query_notes(a.query)
    return d


_LEGENDS = {
    "scorer": "existence score = the scorer's probability that the sound occurs (YES at >= {thr}); window "
              "confidence = the scorer's peak frame probability in the window",
    "fused": "existence score = mean of the grounder's P(yes) and the scorer's existence probability (the "
             "scorer's alone when it vetoed, below {absent}); window confidence = the scorer's frame probability "
             "in the window (mean; peak for its own windows)",
    "llm": "existence score = the grounder's P(yes); window confidence = that same P(yes) (the grounder gives "
           "no per-window confidence)",
}


def format_answers(audio, g, answers, *, frame_threshold: float | None = None) -> str:
    from data_recipes.answer_formats import query_notes

    d = answers[0].duration if answers else 0.0
    models = ", ".join(f"{k} {v}" for k, v in g.sources.items() if v)
    lines = [f"{audio} ({d:.2f} s) — mode {g.mode} ({models})"]
    for a in answers:
        score = "" if a.score is None else f" (existence score {a.score:.2f})"
        lines.append(f"\"{a.query}\": {'YES' if a.exists else 'NO'}{score}")
        for w in a.windows:
            lines.append(f"  {w.start:7.2f} – {w.end:7.2f} s   window confidence {w.confidence:.2f}")
        if a.exists and not a.windows:
            lines.append("  (no window could be read from the answer)")
        if a.exists and a.curve is not None and frame_threshold is not None:
            n = count_events(a.curve, frame_threshold)
            if n > len(a.windows):
                lines.append(f"  {len(a.windows)} of {n} occurrences shown (intervals where the scorer's frame "
                             f"probability is above {frame_threshold:.2f}; more with --top-k, all with earmark detect)")
        if a.scorer:
            cands = ", ".join(f"{c[0]:.2f}–{c[1]:.2f} s ({c[2]:.2f})" for c in a.scorer["candidates"])
            lines.append(f"  scorer: p(present) {a.scorer['p_exists']:.2f}; its best windows {cands}")
        note = f"  decided by {a.decided_by}; answer read: {a.status}"
        if a.thresholds:
            note += f"; thresholds {json.dumps(a.thresholds, sort_keys=True)}"
        lines.append(note)
        for n in query_notes(a.query):
            lines.append(f"  note: {n}")
    if answers:
        t = answers[0].thresholds
        legend = _LEGENDS.get(g.mode, "").format(thr=_num(t.get("scorer_threshold")), absent=_num(t.get("absent_below")))
        if legend:
            lines.append(f"({legend})")
        lines.append(f"{answers[0].timings.get('total_ms', 0) / 1000:.2f} s for {len(answers)} "
                     f"quer{'y' if len(answers) == 1 else 'ies'}")
    return "\n".join(lines)


def _num(x) -> str:
    return "?" if x is None else f"{x:.2f}"


def plot_answers(answers, path, *, title: str = "") -> Path:
    import matplotlib.pyplot as plt

    fig = answers_figure(answers, title=title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def answers_figure(answers, *, title: str = ""):
    """One row per query: the scorer's frame probability (when there is one), the answered windows
    shaded with their confidence, and the decision in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(answers)
    # constrained layout keeps the figure title, the panel titles and the window labels apart
    # (tight_layout let the title overlap the first panel with many queries)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.9 * n + 0.6), squeeze=False, sharex=True, layout="constrained")
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
        score = "" if a.score is None else f", existence score {a.score:.2f}"
        ax.set_title(f"\"{a.query[:80]}\": {'yes' if a.exists else 'no'}{score} ({a.mode}, {a.decided_by})", fontsize=9)
        ax.set_ylabel("p")
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---- audit ----------------------------------------------------------------------------------
def _audit_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="earmark audit", description="Hallucination audit: positive and negative "
                                "queries on a manifest, both stages, hallucination rate, accuracy, F1, per class")
    p.add_argument("manifest", help="manifest JSONL with event annotations")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--split", help="only records of this split (e.g. test)")
    from data_recipes.batch import bounded

    p.add_argument("--negatives-per-positive", type=bounded(int, 0, 100), default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=bounded(int, 1, 10**9), help="only the first N records")
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
        return 2 if isinstance(exc, UsageError) else 1
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
    return metrics, outcomes, "from `earmark eval score` ([eval/report.md](eval/report.md), eval/metrics.json)"


if __name__ == "__main__":
    sys.exit(ask_main())
