"""Command lines: ``earmark contrastive train|eval`` and ``earmark detect``. Parsing only."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _plot(fs, events, threshold: float, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(fs.phrases)
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.9 * n + 0.6), sharex=True, squeeze=False)
    t = fs.times()
    step = max(1, len(t) // 4000)          # hours-long files: max-pool to ~4000 points per curve
    for k, (ax, ph) in enumerate(zip(axes[:, 0], fs.phrases)):
        y = fs.scores[k]
        if step > 1:
            m = len(y) // step * step
            tt, yy = t[:m].reshape(-1, step).mean(1), y[:m].reshape(-1, step).max(1)
        else:
            tt, yy = t, y
        ax.plot(tt, yy, lw=1.0, color="tab:blue")
        ax.axhline(threshold, color="grey", ls="--", lw=0.8)
        for e in events:
            if e.phrase == ph:
                ax.axvspan(e.start, e.end, color="tab:orange", alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("score")
        ax.set_title(ph if len(ph) < 90 else ph[:87] + "...", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 0].set_xlim(0, max(fs.duration, float(np.max(t, initial=0))))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def detect_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="earmark detect",
                                 description="When does each PHRASE sound in AUDIO? (open-vocabulary sound event detection)")
    ap.add_argument("audio", help="audio file (any length, rate, channels)")
    ap.add_argument("phrases", nargs="+", help="what to look for, e.g. 'dog barking'")
    ap.add_argument("--model", default=None, help="scorer checkpoint directory, or a shipped scorer: default (the embedded one), zeroshot, cnn")
    ap.add_argument("--threshold", type=float, default=None, help="detection threshold on the score")
    ap.add_argument("--median", type=float, default=None, help="median filter length in seconds")
    ap.add_argument("--top-k", type=int, default=0, help="also list the K best candidate windows per phrase")
    ap.add_argument("--json", action="store_true", help="print JSON instead of text")
    ap.add_argument("--plot", default=None, help="write the score curves and intervals to this PNG")
    args = ap.parse_args(argv)

    from data_recipes.audio import AudioError

    from .scorer import Scorer

    try:
        kw = {}
        if args.median is not None:
            kw["median_seconds"] = args.median
        if args.threshold is not None:
            kw["threshold"] = args.threshold
        scorer = Scorer.from_pretrained(args.model, **kw)
        emb = scorer.embed(args.audio, progress=not args.json)
        fs = scorer.frame_scores(emb, args.phrases)
        events = scorer.events(fs, args.phrases)
        result = {"audio": args.audio, "duration": round(emb.duration, 2), "threshold": scorer.threshold,
                  "phrases": []}
        for ph in args.phrases:
            entry = {"phrase": ph, "exists": round(scorer.exists(emb, ph), 4),
                     "events": [e.to_dict() for e in events if e.phrase == ph]}
            if args.top_k > 0:
                entry["candidates"] = [[round(s, 2), round(e, 2), round(c, 4)]
                                       for s, e, c in scorer.candidates(emb, ph, args.top_k)]
            result["phrases"].append(entry)
        if args.plot:
            _plot(fs, events, scorer.threshold, Path(args.plot), Path(args.audio).name)
            result["plot"] = args.plot
    except (AudioError, FileNotFoundError, ValueError, TypeError) as e:
        print(f"earmark detect: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{args.audio} ({result['duration']:.2f} s)")
    for entry in result["phrases"]:
        evs = entry["events"]
        print(f"  {entry['phrase']!r}: existence {entry['exists']:.2f}, "
              f"{len(evs)} interval(s) above {scorer.threshold:.2f}")
        for e in evs:
            print(f"    {e['start']:8.2f} - {e['end']:8.2f} s  score {e['score']:.2f}")
        for s, e, c in entry.get("candidates", []):
            print(f"    candidate {s:8.2f} - {e:8.2f} s  peak {c:.2f}")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def _eval(args) -> int:
    from .evaluate import score_manifest
    from .scorer import Scorer

    scorer = Scorer.from_pretrained(args.model)
    out = Path(args.out)
    res = score_manifest(scorer, args.manifest, out, split=args.split, limit=args.limit)
    summary = {"frame_auroc": res["frame_auroc"], "n_audio": len(res["ids"]), "n_classes": len(res["classes"]),
               "model": str(args.model or "default"), "manifest": str(args.manifest)}
    try:
        # eval owns the metric definitions; imported here, at the CLI edge only
        from eval.sed_metrics import SedEvalConfig, evaluate_sed, ground_truth_from_manifest, read_scores
    except ImportError:
        print("eval package not installed: run `earmark eval sed` on the scores directory", file=sys.stderr)
    else:
        scores = read_scores(out / "scores")
        scores = {k: v for k, v in scores.items() if k in set(res["ids"])}
        gt, durs = ground_truth_from_manifest(args.manifest, list(scores))
        settings = tuple(x.strip() for x in args.psds.split(",") if x.strip())
        m = evaluate_sed(scores, gt, durs, config=SedEvalConfig(psds_settings=settings))
        summary.update({"psds": m.psds, "segment_auroc": m.auroc, "mpauc": m.mpauc, "collar_f1": m.collar_f1,
                        "classes_without_events": m.classes_without_events})
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
    ap = argparse.ArgumentParser(prog="earmark contrastive", description="train / evaluate the frame scorer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("train", help="train from a JSON config (see contrastive/configs/)", add_help=False)
    sub.add_parser("train-yamnet", help="train heads on the frozen YAMNet trunk (contrastive/configs/yamnet.json)",
                   add_help=False)
    z = sub.add_parser("zeroshot", help="write a zero-shot YAMNet scorer checkpoint (no training; then "
                                        "calibrate / thresholds as any scorer)")
    z.add_argument("out", help="checkpoint dir to write")
    z.add_argument("--temperature", type=float, default=0.03, help="softmax temperature over class-name similarities")
    z.add_argument("--top-classes", type=int, default=5, help="AudioSet classes a phrase is matched to")
    z.add_argument("--hop-seconds", type=float, default=0.16, help="YAMNet patch hop")
    e = sub.add_parser("eval", help="score a SED manifest; PSDS1/PSDS2/AUROC through eval")
    e.add_argument("model", nargs="?", default=None, help="checkpoint dir (default: embedded)")
    e.add_argument("manifest", help="SED manifest (events = ground truth)")
    e.add_argument("--out", required=True, help="output dir: scores/<id>.tsv, metrics.json (resumable)")
    e.add_argument("--split", default=None, help="only records of this split")
    e.add_argument("--limit", type=int, default=None, help="only the first N records")
    e.add_argument("--psds", default="psds1,psds2,grounding",
                   help="comma-separated PSDS settings (PSDS2 is slow with many classes)")
    c = sub.add_parser("calibrate", help="fit the existence calibration on held-out data; store it "
                                         "with the inference window in the checkpoint's config.json")
    c.add_argument("model", help="checkpoint dir (modified in place)")
    c.add_argument("manifest", help="held-out SED manifest (e.g. the val split)")
    c.add_argument("--split", default="val")
    c.add_argument("--limit", type=int, default=200)
    c.add_argument("--window", type=float, default=10.0, help="inference window (s)")
    c.add_argument("--hop", type=float, default=5.0, help="inference hop (s)")
    c.add_argument("--median-seconds", type=float, default=None,
                   help="median filter of the frame scores before events and candidates "
                        "(default: the checkpoint's, else 0.28; scripts/bench_postprocess.py compares lengths)")
    c.add_argument("--exists-median-seconds", type=float, default=None,
                   help="median filter before the existence peak (default: the checkpoint's, else "
                        "--median-seconds)")
    d = sub.add_parser("thresholds", help="choose the decisions (exists_threshold, absent_below, candidate_rel) "
                                          "on held-out positive/negative queries; store them in config.json")
    d.add_argument("model", help="checkpoint dir (modified in place)")
    d.add_argument("queries", help="held-out queries JSONL with negatives (e.g. needle val.queries.jsonl)")
    d.add_argument("--manifest", required=True, help="the manifest the queries' audio ids come from")
    d.add_argument("--keep-positives", type=float, default=0.95,
                   help="share of positive queries a veto below absent_below must keep (default 0.95)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from .train import main as train_main

        return train_main(argv[1:])
    if argv and argv[0] == "train-yamnet":
        from .yamnet_train import main as yamnet_main

        return yamnet_main(argv[1:]) or 0
    args = ap.parse_args(argv)
    try:
        if args.cmd == "zeroshot":
            return _zeroshot(args)
        if args.cmd == "thresholds":
            return _thresholds(args)
        return _calibrate(args) if args.cmd == "calibrate" else _eval(args)
    except (FileNotFoundError, ValueError) as ex:
        print(f"earmark contrastive {args.cmd}: {ex}", file=sys.stderr)
        return 2
