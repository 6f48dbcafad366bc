"""`earmark data ...`: thin argument parsing over the data_recipes library."""
from __future__ import annotations

import argparse
import sys


def _check(args) -> int:
    from .formats import check_file

    status = 0
    for path in args.files:
        try:
            kind, good, errors = check_file(path, args.kind, check_audio=args.audio, manifest=args.manifest)
        except (FileNotFoundError, ValueError) as exc:  # ValueError: a bad --manifest (FormatError)
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        print(f"{path}: {kind}, {good} good record(s), {len(errors)} bad line(s)"
              + (" (stopped at the first 20)" if len(errors) >= 20 else ""))
        status = status or (1 if errors else 0)
    return status


# Modules that add their own `earmark data` subcommands: each has `add_parser(subparsers)`,
# which registers one or more sub-parsers and sets `func=callable(args) -> int` on them.
SUBCOMMAND_MODULES = ["data_recipes.corpus_cli", "data_recipes.synth_cli", "data_recipes.ingest_cli"]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    p = argparse.ArgumentParser(prog="earmark data", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not a module not written yet
                raise
            continue
        module.add_parser(sub)
    c = sub.add_parser("check", help="validate manifest / query / prediction JSONL files")
    c.add_argument("files", nargs="+")
    c.add_argument("--kind", choices=["manifest", "queries", "predictions"], default=None,
                   help="record kind (default: guessed from the first line)")
    c.add_argument("--audio", action="store_true",
                   help="also check that every audio file exists and lasts the duration its manifest line says")
    c.add_argument("--manifest", default=None,
                   help="check query/prediction files against this manifest: known audio ids, windows within "
                        "the audio's duration")
    c.set_defaults(func=_check)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
