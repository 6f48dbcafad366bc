"""`earmark data corpus DEST`: fetch the Debian sound corpus and write clip / bed manifests."""
from __future__ import annotations

import logging
import sys
from pathlib import Path


def _run(args) -> int:
    from .corpus import SYNTH_TOOLS, CorpusConfig, download_sounds, missing_synth_tools, prepare_corpus

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    missing = [] if args.no_synth or args.allow_missing_tools else missing_synth_tools()
    if missing:
        print(f"earmark data corpus: error: {', '.join(missing)} not installed: the synthesised speech / "
              f"General-MIDI sources need {'them' if len(missing) > 1 else 'it'} (apt-get install "
              f"{' '.join(SYNTH_TOOLS[t] for t in missing)}); or pass --allow-missing-tools to build without "
              f"their clips, or --no-synth to build without any synthesised source", file=sys.stderr)
        return 2
    try:
        cfg = CorpusConfig(seed=args.seed, cap_per_class=args.cap_per_class, workers=args.workers,
                           synth_sources=not args.no_synth)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dest = Path(args.dest)
    if args.sounds:
        sounds = Path(args.sounds)
        if not sounds.is_dir():
            print(f"error: {sounds}: --sounds is not a directory", file=sys.stderr)
            return 2
    else:
        try:
            sounds = download_sounds(dest / "sounds").parent
        except (RuntimeError, FileNotFoundError, OSError) as exc:
            print(f"error: fetching the Debian packages failed: {exc}", file=sys.stderr)
            return 1
    try:
        res = prepare_corpus(sounds, dest, cfg, force=args.force)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(res.table())
    print(f"{dest}: {res.clips} clips -> {dest / 'clips.jsonl'}, {res.beds} beds -> {dest / 'beds.jsonl'}, "
          f"{len(res.skipped)} source file(s) skipped" + (f" (see {dest / 'skipped.tsv'})" if res.skipped else ""))
    return 0


def _run_wide(args) -> int:
    from .corpus import download_sounds
    from .corpus_wide import ALL_PACKAGES, WideConfig, prepare_wide_corpus

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        cfg = WideConfig(seed=args.seed, workers=args.workers, tagger=args.tagger, min_confidence=args.min_confidence,
                         min_steady=args.min_steady, cap_per_class=args.cap_per_class,
                         events_need_path=args.events_need_path)
    except ValueError as exc:
        print(f"earmark data corpus-wide: {exc}", file=sys.stderr)
        return 2
    dest = Path(args.dest)
    roots = [Path(s) for s in args.sounds or []]
    for r in roots:
        if not r.is_dir():
            print(f"earmark data corpus-wide: {r}: --sounds is not a directory", file=sys.stderr)
            return 2
    roots = [r / "x" if (r / "x").is_dir() else r for r in roots]
    if not roots:
        try:
            roots = [download_sounds(dest / "sounds", packages=ALL_PACKAGES)]
        except (RuntimeError, FileNotFoundError, OSError) as exc:
            print(f"earmark data corpus-wide: fetching the Debian packages failed: {exc}", file=sys.stderr)
            return 1
    try:
        res = prepare_wide_corpus(args.narrow, roots, dest, cfg, force=args.force)
    except (FileNotFoundError, LookupError) as exc:
        print(f"earmark data corpus-wide: {exc}", file=sys.stderr)
        return 1
    import json

    info = json.loads((dest / ".completed").read_text())
    print(f"{dest}: {info['wide_clips']} tagger-labelled clips ({len(info['classes'])} AudioSet classes, "
          f"{len(info['phrases'])} phrases, {len(info['packages'])} packages) + the narrow corpus = {res.clips} "
          f"clips -> {dest / 'clips.jsonl'}; review sheet {dest / 'review.tsv'}, {dest / 'review-0.png'} ...; "
          f"every candidate and its outcome in {dest / 'catalog.tsv'}")
    return 0


def add_parser(subparsers) -> None:
    w = subparsers.add_parser("corpus-wide", help="label thousands more Debian sound files with the AudioSet tagger "
                              "(the narrow corpus + tagger-labelled clips)")
    w.add_argument("dest", help="output directory (wide/, clips.jsonl = narrow + wide, tags.jsonl, review sheet)")
    w.add_argument("--narrow", required=True, help="a finished narrow corpus (`earmark data corpus` output)")
    w.add_argument("--sounds", action="append", help="unpacked package tree(s) holding x/<package>/... "
                   "(repeatable; default: fetch every package into DEST/sounds)")
    w.add_argument("--tagger", default="yamnet", help="entry point in earmark.taggers (default yamnet)")
    w.add_argument("--min-confidence", type=float, default=0.3, help="mean label probability to keep a clip (0-1)")
    w.add_argument("--min-steady", type=float, default=0.6, help="share of patches the label must top (0-1)")
    w.add_argument("--cap-per-class", type=int, default=60, help="max source recordings per AudioSet class")
    w.add_argument("--events-need-path", action="store_true",
                   help="keep an event label only when the file's path uses one of its words (precision over quantity)")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    w.add_argument("--force", action="store_true", help="redo the decisions even if DEST/.completed exists "
                   "(tagging resumes from DEST/tags.jsonl either way)")
    w.set_defaults(func=_run_wide)

    p = subparsers.add_parser("corpus", help="fetch + label the Debian sound corpus; write clips/beds manifests")
    p.add_argument("dest", help="output directory (clips/, beds/, clips.jsonl, beds.jsonl)")
    p.add_argument("--sounds", help="an already unpacked tree (holding x/<package>/...) instead of fetching")
    p.add_argument("--seed", type=int, default=0, help="seed of the split order (default 0)")
    p.add_argument("--cap-per-class", type=int, default=150, help="max source recordings per class (default 150)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--no-synth", action="store_true", help="skip TTS / fluidsynth / noise-bed sources")
    p.add_argument("--allow-missing-tools", action="store_true",
                   help="build even if flite / espeak-ng / fluidsynth are missing (their clips are left out)")
    p.add_argument("--force", action="store_true", help="redo even if DEST/.completed exists")
    p.set_defaults(func=_run)
