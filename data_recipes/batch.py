"""Batch runs of ``earmark ask`` / ``earmark detect``: inputs (files, folders, globs) -> audio files,
a resumable JSONL log of the answers, the loop with its progress bar, and bounded numeric options.

The log (``--out FILE.jsonl``) starts with a header line ``{"id": "header", "header": {...}}``
holding the command and the settings the answers depend on (models, thresholds); every other line
is one answer, ``{"id": "<audio>::<query>", "audio": ..., "query": ..., ...}``. ``--resume``
skips the (audio, query) pairs already there, and refuses a log made with other settings: mixing
two models' answers in one file would credit the mix to one of them.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from .formats import JsonlAppender
from .ingest.common import AUDIO_EXTS

__all__ = ["InputError", "expand_inputs", "check_readable", "AnswerLog", "run_batch", "bounded", "answer_id",
           "check_out", "quiet_loading"]

HEADER_ID = "header"


class InputError(ValueError):
    """An input argument that names no usable audio (the message names it)."""


def expand_inputs(items: Iterable[str], *, suffixes: tuple[str, ...] = AUDIO_EXTS) -> list[str]:
    """Files as given, folders walked recursively for audio files (by extension), globs expanded
    (``**`` recurses); sorted within each input, duplicates dropped, order of the inputs kept."""
    out: dict[str, None] = {}
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = _audio_in(p, suffixes)
            if not found:
                raise InputError(f"{item}: no audio files ({' '.join(suffixes)}) in this folder")
        elif p.exists():
            found = [str(p)]
        elif glob.has_magic(item):
            found = []
            for m in sorted(glob.glob(item, recursive=True)):
                found += _audio_in(Path(m), suffixes) if Path(m).is_dir() else [m]
            if not found:
                raise InputError(f"{item}: no file matches this pattern")
        else:
            raise InputError(f"{item}: no such file or directory")
        out.update(dict.fromkeys(found))
    return list(out)


def _audio_in(folder: Path, suffixes) -> list[str]:
    ok = {s.lower() for s in suffixes}
    return sorted(str(f) for f in folder.rglob("*") if f.suffix.lower() in ok and f.is_file())


def check_readable(paths: Iterable[str]) -> None:
    """Every path readable (checked before any model loads, or before each recording of a batch)."""
    for p in paths:
        if not _readable(p):
            raise InputError(f"{p}: permission denied (not readable)")


def _readable(path) -> bool:
    return os.access(path, os.R_OK)


def answer_id(audio: str, query: str) -> str:
    return f"{audio}::{query}"


def check_out(path, *, resume: bool) -> None:
    """Refuse to mix a new run into an existing --out file (before any model loads)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"--out {p}: is a directory; give a .jsonl file")
    if p.is_file() and p.stat().st_size > 0 and not resume:
        raise FileExistsError(f"{p} exists; pass --resume to continue it or choose another --out")


class AnswerLog:
    """The ``--out`` JSONL file: appended as answers are made, resumable."""

    def __init__(self, path: str | os.PathLike, header: dict, *, resume: bool):
        self.path = Path(path)
        check_out(self.path, resume=resume)
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if exists:
            self._check_header(header)
        self._out = JsonlAppender(self.path)  # cuts a line torn by a crash; knows the ids written
        if not exists:
            self._out.write({"id": HEADER_ID, "header": header})

    def _check_header(self, header: dict) -> None:
        with open(self.path, encoding="utf-8") as f:
            first = f.readline()
        try:
            old = json.loads(first).get("header")
        except (ValueError, AttributeError):
            old = None
        if not isinstance(old, dict):
            raise ValueError(f"{self.path}: not an earmark answers file (no header line); use another --out")
        if old != header:
            diff = [f"{k}: {old.get(k)!r} then, {header.get(k)!r} now" for k in sorted(set(old) | set(header))
                    if old.get(k) != header.get(k)]
            raise ValueError(f"{self.path} was made with other settings ({'; '.join(diff)}); resume with the "
                             f"same ones or use another --out")

    def done(self, audio: str, query: str) -> bool:
        return answer_id(audio, query) in self._out.done

    def write(self, audio: str, query: str, record: dict) -> None:
        self._out.write({"id": answer_id(audio, query), "audio": audio, "query": query, **record})

    def close(self) -> None:
        self._out.close()


def run_batch(files: list[str], work: Callable[[str], None], *, prog: str, errors: tuple,
              progress: bool | None = None) -> list[str]:
    """``work(file)`` for every file under a progress bar (stderr; ``None``: only on a terminal).
    A file whose work raises one of ``errors`` is reported in one line and the batch goes on;
    returns the files that failed."""
    from tqdm import tqdm

    failed = []
    bar = tqdm(files, total=len(files), unit="file", file=sys.stderr, disable=(not progress) if progress is not None
               else None, dynamic_ncols=True)
    for f in bar:
        try:
            work(f)
        except BrokenPipeError:  # the reader of stdout is gone: that ends the run, not one file
            raise
        except errors as exc:
            msg = str(exc) if str(f) in str(exc) else f"{f}: {exc}"
            tqdm.write(f"{prog}: error: {msg}", file=sys.stderr)
            failed.append(f)
    bar.close()
    return failed


def quiet_loading() -> None:
    """No weight-loading progress bars or advisories on stderr: they are not the answer. Set in the
    environment, read when huggingface_hub / transformers are imported, so nothing is imported
    here (a start that does not need transformers stays without it)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:  # already imported: its settings were read, change them
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        tlog.set_verbosity_error()


def bounded(typ: type, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False, unit: str = ""):
    """An argparse ``type=`` that rejects values outside [lo, hi] (open ends as asked), NaN and
    infinity, with the range in the message (argparse adds the option's name)."""
    def parse(text: str):
        try:
            v = typ(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if typ is int else 'a number'}") from None
        ok = math.isfinite(v) and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi)
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be in {rng}{' ' + unit if unit else ''}, got {text}")
        return v

    parse.__name__ = typ.__name__  # argparse names the type in some messages
    return parse


def batch_exit_code(prog: str, failed: list[str], total: int) -> int:
    """1 if any recording failed, else 0; with several recordings, one summary line naming the first."""
    if failed and total > 1:
        more = ", ..." if len(failed) > 3 else ""
        print(f"{prog}: error: {len(failed)} of {total} recordings failed ({', '.join(failed[:3])}{more})",
              file=sys.stderr)
    return 1 if failed else 0


def answer_batch(files: list[str], answer: Callable[[str, object], None], *, prog: str, fmt: str, document,
                 single: bool, quiet: bool, errors: tuple, failed: list[str], log=None) -> int:
    """The batch loop of ``ask`` and ``detect``: ``answer(file, writer)`` for every file, with the
    format's writer (none for text), the answer log closed whatever happens, and the exit code.

    ``failed`` is filled in place before the writer closes, because a JSON ``document(files)``
    reports the failures; a single recording that failed writes no document at all."""
    from .answer_formats import AnswerWriter

    writer = None if fmt == "text" else AnswerWriter(fmt, sys.stdout, document=document)
    try:
        failed.extend(run_batch(files, lambda f: answer(f, writer), prog=prog, errors=errors,
                                progress=False if (single or quiet) else None))
    finally:
        if log is not None:
            log.close()
    if writer is not None and not (single and failed):
        writer.close()
    return batch_exit_code(prog, failed, len(files))

