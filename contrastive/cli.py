"""Command lines: ``earmark contrastive train|eval`` and ``earmark detect``. Parsing only."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _plot(scorer, fs, events, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    fig = _plot_figure(scorer, fs, events, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_figure(scorer, fs, events, title: str):
    """One panel per phrase: the median-filtered curve the intervals were cut from (so every
    crossing of the threshold line has its interval), the raw frame scores faint behind it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(fs.phrases)
    # constrained layout keeps the title off the first panel whatever the number of phrases
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.9 * n + 0.8), sharex=True, squeeze=False, layout="constrained")
    t = fs.times()
    smooth = scorer.smoothed(fs)
    step = max(1, len(t) // 4000)          # hours-long files: max-pool to ~4000 points per curve
    for k, (ax, ph) in enumerate(zip(axes[:, 0], fs.phrases)):
        for y, style in ((fs.scores[k], {"lw": 0.6, "color": "tab:blue", "alpha": 0.3, "label": "raw frame score"}),
                         (smooth[k], {"lw": 1.1, "color": "tab:blue",
                                      "label": f"median-filtered ({scorer.median_seconds:g} s)"})):
            if step > 1:
                m = len(y) // step * step
                tt, yy = t[:m].reshape(-1, step).mean(1), y[:m].reshape(-1, step).max(1)
            else:
                tt, yy = t, y
            ax.plot(tt, yy, **style)
        ax.axhline(scorer.threshold, color="grey", ls="--", lw=0.8, label=f"threshold {scorer.threshold:.2f}")
        for e in events:
            if e.phrase == ph:
                ax.axvspan(e.start, e.end, color="tab:orange", alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("score")
        ax.set_title(ph if len(ph) < 90 else ph[:87] + "...", fontsize=9, loc="left")
    axes[0, 0].legend(loc="upper right", fontsize=7, ncols=3, framealpha=0.8)
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 0].set_xlim(0, max(fs.duration, float(np.max(t, initial=0))))
    fig.suptitle(title, fontsize=10)
    return fig


_DETECT_USAGE = """\
earmark detect AUDIO PHRASE [PHRASE ...] [options]                    one recording
       earmark detect -q PHRASE [-q PHRASE ...] INPUT [INPUT ...] [options]  a batch"""

_DETECT_EPILOG = """\
inputs and phrases: without -q/--query the first word is the recording and the rest are the
phrases; with -q every positional word is an INPUT: an audio file, a folder (walked recursively
for audio files) or a glob such as 'clips/**/*.wav' (quote it). The scorer loads once for all.

each phrase gets an existence decision (present: its existence probability >= --exists-threshold,
the checkpoint's calibrated one by default, as `earmark ask --mode scorer` decides) and the
intervals where the median-filtered frame score is above --threshold.

batch: --out FILE.jsonl appends one line per (recording, phrase) as it goes (after a header line
naming the model and settings); --resume skips what it already holds and refuses a file made with
other settings. A recording that fails is reported in one line and the batch goes on; the exit
code is 1 when any failed.

formats (--format): text (default), json, jsonl, tsv (DCASE/sed_scores_eval events: filename
onset offset event_label), csv (the same + peak score), audacity (label track), srt, vtt. Event
formats list the intervals of phrases judged present (--exists-threshold 0 lists them all);
audacity, srt and vtt describe one recording.

exit codes: 0 done, 1 an input, the model or a recording failed, 2 usage error, 130 interrupted."""


def _detect_parser() -> argparse.ArgumentParser:
    from data_recipes.answer_formats import FORMATS
    from data_recipes.batch import bounded

    ap = argparse.ArgumentParser(prog="earmark detect", usage=_DETECT_USAGE, epilog=_DETECT_EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description="When does each PHRASE sound in AUDIO? (open-vocabulary sound event detection)")
    ap.add_argument("words", nargs="+", metavar="AUDIO/PHRASE/INPUT",
                    help="AUDIO PHRASE... (any length, rate, channels), or with -q the inputs")
    ap.add_argument("-q", "--query", "--phrase", action="append", dest="query_opts", metavar="PHRASE",
                    help="what to look for, e.g. 'dog barking' (repeat for several); makes every positional an input")
    ap.add_argument("--model", default=None, help="scorer checkpoint directory, or a shipped scorer: default (the embedded one), zeroshot, cnn")
    ap.add_argument("--threshold", type=bounded(float, 0.0, 1.0, lo_open=True, hi_open=True), default=None,
                    help="frame threshold of the intervals (default: the checkpoint's)")
    ap.add_argument("--median", type=bounded(float, 0.0, 10.0, unit="seconds"), default=None,
                    help="median filter length in seconds (default: the checkpoint's)")
    ap.add_argument("--exists-threshold", type=bounded(float, 0.0, 1.0), default=None,
                    help="existence decision threshold (default: the checkpoint's calibrated one)")
    ap.add_argument("--top-k", type=bounded(int, 0, 100), default=0,
                    help="also list the K best candidate windows per phrase")
    ap.add_argument("--format", choices=FORMATS, default=None, help="output format on stdout (default text)")
    ap.add_argument("--json", action="store_true", help="the same as --format json")
    ap.add_argument("--out", help="append the results to this JSONL file as they are made (resumable)")
    ap.add_argument("--resume", action="store_true", help="continue --out: skip what it already holds")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (default: on a terminal)")
    ap.add_argument("--plot", default=None, help="write the score curves and intervals to this PNG (one recording)")
    return ap


def detect_main(argv: list[str] | None = None) -> int:
    ap = _detect_parser()
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.query_opts:
        inputs, phrases = list(args.words), list(args.query_opts)
    elif len(args.words) < 2:
        ap.error("give at least one PHRASE after AUDIO (or the phrases with -q/--query)")
    else:
        inputs, phrases = args.words[:1], args.words[1:]
    if args.json and args.format not in (None, "json"):
        ap.error(f"--json is --format json; it contradicts --format {args.format}")
    if args.resume and not args.out:
        ap.error("--resume continues an --out file; give --out")
    fmt = "json" if args.json else (args.format or "text")
    try:
        job = _DetectJob(args, inputs, phrases, fmt)
    except _DetectUsage as e:
        ap.error(str(e))
    except (ValueError, TypeError, OSError) as e:  # AudioError, InputError, FormatError are ValueErrors
        print(f"earmark detect: error: {e}", file=sys.stderr)
        return 1
    return job.run()


class _DetectUsage(ValueError):
    """Options that contradict the inputs (argparse's usage error, exit 2)."""


class _DetectJob:
    """One `earmark detect` run: inputs checked before the scorer loads, then every recording."""

    def __init__(self, args, inputs, phrases, fmt):
        from data_recipes.answer_formats import ONE_RECORDING_FORMATS
        from data_recipes.audio import audio_info
        from data_recipes.batch import AnswerLog, check_out, check_readable, expand_inputs, quiet_loading

        self.args, self.fmt = args, fmt
        self.files = expand_inputs(inputs)
        self.single = len(inputs) == 1 and len(self.files) == 1 and Path(inputs[0]).is_file()
        if self.single:  # (a batch reports each unreadable recording and goes on)
            check_readable(self.files)
            audio_info(self.files[0])  # a missing or undecodable file fails before the model loads
        if len(self.files) > 1 and fmt in ONE_RECORDING_FORMATS:
            raise _DetectUsage(f"--format {fmt} describes one recording, and there are {len(self.files)}; "
                               f"use tsv, csv or jsonl for a batch")
        if len(self.files) > 1 and args.plot:
            raise _DetectUsage(f"--plot draws one recording, and there are {len(self.files)}")
        for i, ph in enumerate(phrases):
            if not ph.strip():
                raise ValueError(f"phrase {i + 1} ({ph!r}) is empty; give a description such as 'dog barking'")
        self.phrases = [" ".join(ph.split()) for ph in phrases]
        if args.out:
            check_out(args.out, resume=args.resume)
        from .scorer import Scorer, resolve_scorer_dir

        quiet_loading()
        kw = {k: v for k, v in (("median_seconds", args.median), ("threshold", args.threshold),
                                ("exists_threshold", args.exists_threshold)) if v is not None}
        self.scorer = Scorer.from_pretrained(args.model, **kw)
        sc = self.scorer
        self.settings = {"model": str(resolve_scorer_dir(args.model)), "threshold": sc.threshold,
                         "median_seconds": sc.median_seconds, "exists_threshold": sc.exists_threshold,
                         "exists_median_seconds": sc.exists_median_seconds, "window": sc.window, "hop": sc.hop,
                         "top_k": args.top_k}
        self.log = AnswerLog(args.out, {"command": "detect", **self.settings}, resume=args.resume) if args.out else None
        self.failed: list[str] = []

    def run(self) -> int:
        from data_recipes.audio import AudioError
        from data_recipes.batch import answer_batch

        return answer_batch(self.files, self._detect, prog="earmark detect", fmt=self.fmt, document=self._document,
                            single=self.single, quiet=self.args.no_progress, failed=self.failed, log=self.log,
                            errors=(AudioError, ValueError, TypeError, OSError, RuntimeError))

    def _detect(self, audio: str, writer) -> None:
        from data_recipes.answer_formats import AnswerRow, query_notes
        from data_recipes.batch import check_readable

        check_readable([audio])

        todo = [ph for ph in self.phrases if self.log is None or not self.log.done(audio, ph)]
        if not todo:
            return
        sc = self.scorer
        # the encoder's own bar only for one recording on a terminal (the batch has its bar)
        emb = sc.embed(audio, progress=self.single and self.fmt == "text" and not self.args.no_progress
                       and sys.stderr.isatty())
        fs = sc.frame_scores(emb, todo)
        events = sc.events(fs, todo)
        rows = []
        for ph in todo:
            p = sc.exists(emb, ph)
            evs = [e for e in events if e.phrase == ph]
            # the decision `earmark ask --mode scorer` makes: the checkpoint's calibrated existence
            # probability against its exists_threshold
            entry = {"phrase": ph, "exists": round(p, 4), "present": bool(p >= sc.exists_threshold),
                     "events": [e.to_dict() for e in evs], "notes": query_notes(ph)}
            if self.args.top_k > 0:
                entry["candidates"] = [[round(s, 2), round(e, 2), round(c, 4)]
                                       for s, e, c in sc.candidates(emb, ph, self.args.top_k)]
            if entry["present"] and not evs:
                # present by the existence decision, yet no frame reaches the interval threshold: say
                # where the evidence is instead of a bare "0 intervals"
                best = sc.candidates(emb, ph, 1)
                if best:
                    entry["best_window"] = [round(best[0][0], 2), round(best[0][1], 2), round(best[0][2], 4)]
            rows.append(AnswerRow(audio, ph, entry["present"], [(e.start, e.end, e.score) for e in evs], entry))
            if self.log is not None:
                self.log.write(audio, ph, {"duration": round(emb.duration, 2), **entry})
        doc = {"audio": audio, "duration": round(emb.duration, 2), "threshold": sc.threshold,
               "exists_threshold": sc.exists_threshold, "phrases": [r.record for r in rows]}
        if self.args.plot:
            _plot(sc, fs, events, Path(self.args.plot), Path(audio).name)
            doc["plot"] = self.args.plot
        if writer is not None:
            writer.write(audio, rows, doc)
        else:
            from tqdm import tqdm

            tqdm.write(self._text(doc), file=sys.stdout)
        if self.args.plot and writer is not None and self.fmt != "json":
            print(f"plot: {self.args.plot}", file=sys.stderr)

    def _text(self, doc: dict) -> str:
        sc = self.scorer
        lines = [f"{doc['audio']} ({doc['duration']:.2f} s)"]
        for entry in doc["phrases"]:
            evs = entry["events"]
            lines.append(f"  {entry['phrase']!r}: {'PRESENT' if entry['present'] else 'ABSENT'} (existence "
                         f"{entry['exists']:.2f}, present at >= {sc.exists_threshold:.2f}); {len(evs)} interval(s) "
                         f"above frame threshold {sc.threshold:.2f}")
            for e in evs:
                lines.append(f"    {e['start']:8.2f} - {e['end']:8.2f} s  peak score {e['score']:.2f}")
            if "best_window" in entry:
                s_, e_, c_ = entry["best_window"]
                lines.append(f"    no frame reaches {sc.threshold:.2f}; the evidence peaks at {s_:.2f} - {e_:.2f} s "
                             f"(peak {c_:.2f}): lower --threshold for intervals there")
            for s, e, c in entry.get("candidates", []):
                lines.append(f"    candidate {s:8.2f} - {e:8.2f} s  peak {c:.2f}")
            for note in entry["notes"]:
                lines.append(f"    note: {note}")
        lines.append("  (existence = the scorer's probability that the phrase sounds anywhere in the recording; "
                     "peak score = the highest median-filtered frame score inside the interval)")
        if "plot" in doc:
            lines.append(f"plot: {doc['plot']}")
        return "\n".join(lines)

    def _document(self, files: list[dict]) -> dict:
        if self.single and len(files) == 1:
            return files[0]
        return {**self.settings, "files": files, "failed": list(self.failed)}


def _eval(args) -> int:
    from .evaluate import score_manifest
    from .scorer import Scorer

    try:
        # eval owns the metric definitions and the post-processing; imported at the CLI edge only
        from eval.postprocess import check_filter_length, describe_median_filter
        from eval.sed_metrics import SedEvalConfig, evaluate_sed_files
    except ImportError:
        evaluate_sed_files = None
    scorer = Scorer.from_pretrained(args.model)
    if evaluate_sed_files is not None:
        # default: the filter the scorer itself detects with (its median_seconds, chosen on val)
        own = max(1, int(round(scorer.median_seconds * scorer.fps)) | 1)
        n = check_filter_length(own if args.median_filter is None else args.median_filter)
    out = Path(args.out)
    # raw scores on disk: the filter is applied (and said) once, here and in `earmark eval sed` alike
    res = score_manifest(scorer, args.manifest, out, split=args.split, limit=args.limit, smooth=False)
    summary = {"frame_auroc": res["frame_auroc"], "n_audio": len(res["ids"]), "n_classes": len(res["classes"]),
               "model": str(args.model or "default"), "manifest": str(args.manifest)}
    if evaluate_sed_files is None:
        print("eval package not installed: run `earmark eval sed` on the scores directory", file=sys.stderr)
    else:
        settings = tuple(x.strip() for x in args.psds.split(",") if x.strip())
        m, frame_s = evaluate_sed_files(out / "scores", args.manifest, median_filter=n,
                                        config=SedEvalConfig(psds_settings=settings), audio_ids=res["ids"])
        summary.update({"psds": m.psds, "segment_auroc": m.auroc, "mpauc": m.mpauc, "collar_f1": m.collar_f1,
                        "classes_without_events": m.classes_without_events, "median_filter": n})
        print(f"post-processing: {describe_median_filter(n, frame_s)} (--median-filter; frame_auroc is of the "
              f"raw scores)")
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    brief = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    brief.update({f"psds.{k}": v for k, v in summary.get("psds", {}).items()})
    brief.update({f"collar_f1.{k}": v for k, v in summary.get("collar_f1", {}).items() if not isinstance(v, dict)})
    print(json.dumps(brief, indent=2, sort_keys=True))
    print(f"full metrics: {out / 'metrics.json'}")
    return 0


def _thresholds(args) -> int:
    from .config import dump_json
    from .evaluate import fit_decision_thresholds
    from .scorer import Scorer

    path = Path(args.model)
    if not 0.0 < args.keep_positives <= 1.0:
        raise ValueError(f"--keep-positives must be in (0, 1], got {args.keep_positives}")
    dec = fit_decision_thresholds(Scorer.from_pretrained(path), args.queries, args.manifest,
                                  keep_positives=args.keep_positives)
    meta = json.loads((path / "config.json").read_text())
    meta.setdefault("inference", {})["decision"] = dec
    dump_json(meta, path / "config.json")
    print(json.dumps(dec, indent=2))
    return 0


def _calibrate(args) -> int:
    from .config import dump_json
    from .evaluate import fit_existence_calibration
    from .scorer import Scorer

    path = Path(args.model)
    kw = {k: v for k, v in (("median_seconds", args.median_seconds),
                            ("exists_median_seconds", args.exists_median_seconds)) if v is not None}
    scorer = Scorer.from_pretrained(path, window=args.window, hop=args.hop, **kw)
    cal = fit_existence_calibration(scorer, args.manifest, split=args.split, limit=args.limit)
    meta = json.loads((path / "config.json").read_text())
    meta["inference"] = {"window": args.window, "hop": args.hop, "median_seconds": scorer.median_seconds,
                         "exists_median_seconds": scorer.exists_median_seconds,
                         "threshold": cal["frame_threshold"], "existence_calibration": cal}
    dump_json(meta, path / "config.json")
    print(json.dumps(meta["inference"], indent=2))
    print("existence decisions reset to the defaults: re-run `earmark contrastive thresholds` on held-out queries",
          file=sys.stderr)
    return 0


def _zeroshot(args) -> int:
    from .yamnet_scorer import YamnetScorerConfig, YamnetScorerModel

    cfg = YamnetScorerConfig(kind="zeroshot", temperature=args.temperature, top_classes=args.top_classes,
                             hop_seconds=args.hop_seconds)
    YamnetScorerModel(cfg).save_pretrained(args.out, extra={"inference": {"window": 30.0, "hop": 27.0}})
    print(f"wrote {args.out}/config.json (zero-shot; next: earmark contrastive calibrate / thresholds)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from data_recipes.batch import bounded

    ap = argparse.ArgumentParser(prog="earmark contrastive", description="train / evaluate the frame scorer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("train", help="train from a JSON config (see contrastive/configs/)", add_help=False)
    sub.add_parser("train-yamnet", help="train heads on the frozen YAMNet trunk (contrastive/configs/yamnet.json)",
                   add_help=False)
    z = sub.add_parser("zeroshot", help="write a zero-shot YAMNet scorer checkpoint (no training; then "
                                        "calibrate / thresholds as any scorer)")
    z.add_argument("out", help="checkpoint dir to write")
    z.add_argument("--temperature", type=bounded(float, 0, 10, lo_open=True), default=0.03,
                   help="softmax temperature over class-name similarities")
    z.add_argument("--top-classes", type=bounded(int, 1, 521), default=5, help="AudioSet classes a phrase is matched to")
    z.add_argument("--hop-seconds", type=bounded(float, 0.01, 0.96, unit="seconds"), default=0.16,
                   help="YAMNet patch hop")
    e = sub.add_parser("eval", help="score a SED manifest; PSDS1/PSDS2/AUROC through eval")
    e.add_argument("model", nargs="?", default=None, help="checkpoint dir (default: embedded)")
    e.add_argument("manifest", help="SED manifest (events = ground truth)")
    e.add_argument("--out", required=True, help="output dir: scores/<id>.tsv, metrics.json (resumable)")
    e.add_argument("--split", default=None, help="only records of this split")
    e.add_argument("--limit", type=bounded(int, 1, 10**9), default=None, help="only the first N records")
    e.add_argument("--psds", default="psds1,psds2,grounding",
                   help="comma-separated PSDS settings (PSDS2 is slow with many classes)")
    e.add_argument("--median-filter", type=int, default=None,
                   help="median filter length in frames applied to the written raw scores before the SED metrics "
                        "(odd; 1 = none; default: the scorer's own detection filter, its median_seconds; "
                        "`earmark eval sed --median-filter N` on the scores gives the same numbers)")
    c = sub.add_parser("calibrate", help="fit the existence calibration on held-out data; store it "
                                         "with the inference window in the checkpoint's config.json")
    c.add_argument("model", help="checkpoint dir (modified in place)")
    c.add_argument("manifest", help="held-out SED manifest (e.g. the val split)")
    c.add_argument("--split", default="val")
    c.add_argument("--limit", type=bounded(int, 1, 10**9), default=200)
    c.add_argument("--window", type=bounded(float, 0.5, 600, unit="seconds"), default=10.0, help="inference window (s)")
    c.add_argument("--hop", type=bounded(float, 0.1, 600, unit="seconds"), default=5.0, help="inference hop (s)")
    c.add_argument("--median-seconds", type=bounded(float, 0, 10, unit="seconds"), default=None,
                   help="median filter of the frame scores before events and candidates "
                        "(default: the checkpoint's, else 0.28; scripts/bench_postprocess.py compares lengths)")
    c.add_argument("--exists-median-seconds", type=bounded(float, 0, 10, unit="seconds"), default=None,
                   help="median filter before the existence peak (default: the checkpoint's, else "
                        "--median-seconds)")
    d = sub.add_parser("thresholds", help="choose the decisions (exists_threshold, absent_below, candidate_rel) "
                                          "on held-out positive/negative queries; store them in config.json")
    d.add_argument("model", help="checkpoint dir (modified in place)")
    d.add_argument("queries", help="held-out queries JSONL with negatives (e.g. needle val.queries.jsonl)")
    d.add_argument("--manifest", required=True, help="the manifest the queries' audio ids come from")
    d.add_argument("--keep-positives", type=bounded(float, 0, 1), default=0.95,
                   help="share of positive queries a veto below absent_below must keep (default 0.95)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from .train import main as train_main

        return train_main(argv[1:])
    if argv and argv[0] == "train-yamnet":
        from .yamnet_train import main as yamnet_main

        return yamnet_main(argv[1:]) or 0
    try:
        args = ap.parse_args(argv)
    except SystemExit as ex:  # a usage error (argparse said which): the code, not an exception, to callers
        return int(ex.code or 0)
    try:
        if args.cmd == "zeroshot":
            return _zeroshot(args)
        if args.cmd == "thresholds":
            return _thresholds(args)
        return _calibrate(args) if args.cmd == "calibrate" else _eval(args)
    except FileNotFoundError as ex:   # runtime: exit 1, like every earmark command
        print(f"earmark contrastive {args.cmd}: error: {ex}", file=sys.stderr)
        return 1
    except ValueError as ex:          # a value the checkpoint or the data cannot take
        print(f"earmark contrastive {args.cmd}: error: {ex}", file=sys.stderr)
        return 2
