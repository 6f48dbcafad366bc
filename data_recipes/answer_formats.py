"""Answers out, in the formats other tools read: one writer for ``earmark ask`` and ``earmark detect``.

=========  ======================================================================================
format     layout
=========  ======================================================================================
json       one document (the command builds it); written at the end
jsonl      one JSON object per (recording, query) answer, written as each recording is done
tsv        DCASE / sed_scores_eval events: ``filename  onset  offset  event_label`` (header line)
csv        the same columns plus ``confidence``, comma-separated (spreadsheets, pandas)
audacity   an Audacity label track: ``start  end  label``, tab-separated, no header
srt        SubRip cues (``HH:MM:SS,mmm --> HH:MM:SS,mmm``), numbered from 1, in time order
vtt        WebVTT cues (``WEBVTT`` header, ``HH:MM:SS.mmm``), in time order
=========  ======================================================================================

The event formats (tsv, csv, audacity, srt, vtt) hold one line / cue per answered window; an
answer without windows (a "no") writes nothing there, while json/jsonl keep every answer.
audacity, srt and vtt describe one recording (their times have no file column), so a writer for
them refuses a second recording. Labels are whitespace-normalised: a tab or newline in a query
would otherwise split a row or a cue. The small readers here (``read_audacity``, ``read_srt``,
``read_vtt``) exist for round-trip tests and for users who want the labels back.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from typing import IO

__all__ = ["FORMATS", "EVENT_FORMATS", "ONE_RECORDING_FORMATS", "AnswerRow", "AnswerWriter", "srt_time",
           "vtt_time", "parse_timestamp", "read_audacity", "read_srt", "read_vtt", "query_notes"]

FORMATS = ("text", "json", "jsonl", "tsv", "csv", "audacity", "srt", "vtt")
EVENT_FORMATS = ("tsv", "csv", "audacity", "srt", "vtt")
ONE_RECORDING_FORMATS = ("audacity", "srt", "vtt")
TSV_HEADER = ("filename", "onset", "offset", "event_label")
CSV_HEADER = TSV_HEADER + ("confidence",)

#: a query whose letters are mostly outside ASCII is probably not English; the text towers of the
#: shipped scorers were trained on English captions only, so their "no" then means little
NON_ENGLISH_NOTE = ("the text encoder is English-only; this query is mostly non-English letters, so its "
                    "answer is unreliable (ask in English)")


@dataclass
class AnswerRow:
    """One answered query about one recording: what event formats need, plus ``record``, the
    command's full JSON form of the answer (written as is by json/jsonl)."""

    audio: str
    query: str
    exists: bool | None
    windows: list = field(default_factory=list)   # [(start, end, confidence), ...]
    record: dict = field(default_factory=dict)


def query_notes(query: str) -> list[str]:
    """Warnings about a query the models cannot be expected to understand."""
    letters = [c for c in query if c.isalpha()]
    if letters and sum(not c.isascii() for c in letters) > len(letters) / 2:
        return [NON_ENGLISH_NOTE]
    return []


def _label(text: str) -> str:
    return " ".join(str(text).split())


def _ms(t: float) -> int:
    if not t >= 0:  # also catches NaN
        raise ValueError(f"time {t!r}: must be a number of seconds >= 0")
    return int(round(float(t) * 1000))


def _clock(t: float, sep: str) -> str:
    ms = _ms(t)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt_time(t: float) -> str:
    """Seconds -> SubRip ``HH:MM:SS,mmm`` (hours grow past 99 for very long recordings)."""
    return _clock(t, ",")


def vtt_time(t: float) -> str:
    """Seconds -> WebVTT ``HH:MM:SS.mmm``."""
    return _clock(t, ".")


_STAMP = re.compile(r"^(?:(\d+):)?(\d{2}):(\d{2})[.,](\d{3})$")


def parse_timestamp(stamp: str) -> float:
    """``HH:MM:SS,mmm`` / ``HH:MM:SS.mmm`` / ``MM:SS.mmm`` -> seconds."""
    m = _STAMP.match(stamp.strip())
    if not m:
        raise ValueError(f"{stamp!r}: not a timestamp (HH:MM:SS,mmm or HH:MM:SS.mmm)")
    h, mi, s, ms = (int(x) if x else 0 for x in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000


class AnswerWriter:
    """Writes rows in one of :data:`FORMATS` (not ``text``, which each command prints itself) to
    ``stream``. ``write`` takes the rows of one recording as it is done; ``close`` ends the output
    (json is written there: ``document(files)`` builds it from the per-recording entries)."""

    def __init__(self, fmt: str, stream: IO[str], *, document=None):
        if fmt not in FORMATS or fmt == "text":
            raise ValueError(f"format {fmt!r}: must be one of {', '.join(f for f in FORMATS if f != 'text')}")
        self.fmt, self.stream, self.document = fmt, stream, document
        self._files: list[dict] = []
        self._recordings: set[str] = set()
        self._cue = 0
        self._table = None
        if fmt in ("tsv", "csv"):
            # csv quoting keeps a label with quotes or separators in one field, the way pandas'
            # reader (and sed_scores_eval, which uses it) reads it back
            self._table = csv.writer(stream, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
            self._table.writerow(TSV_HEADER if fmt == "tsv" else CSV_HEADER)
        elif fmt == "vtt":
            stream.write("WEBVTT\n")

    def write(self, audio: str, rows: list[AnswerRow], entry: dict | None = None) -> None:
        """The answers about one recording; ``entry`` is its JSON entry (json format)."""
        if self.fmt in ONE_RECORDING_FORMATS:
            self._recordings.add(str(audio))
            if len(self._recordings) > 1:
                raise ValueError(f"--format {self.fmt} describes one recording; for several use tsv, csv or jsonl")
        if self.fmt == "json":
            self._files.append(entry if entry is not None else {"audio": str(audio),
                                                                "answers": [r.record for r in rows]})
            return
        if self.fmt == "jsonl":
            for r in rows:
                self.stream.write(json.dumps({"audio": str(audio), "query": r.query, **r.record},
                                             ensure_ascii=False, allow_nan=False) + "\n")
        else:
            events = sorted(((float(w[0]), float(w[1]), _label(r.query), float(w[2]) if len(w) > 2 else None)
                             for r in rows if r.exists is not False for w in r.windows), key=lambda e: e[:3])
            getattr(self, "_" + self.fmt)(str(audio), events)
        self.stream.flush()

    def _tsv(self, audio, events) -> None:
        for s, e, label, _ in events:
            self._table.writerow([audio, f"{s:.3f}", f"{e:.3f}", label])

    def _csv(self, audio, events) -> None:
        for s, e, label, c in events:
            self._table.writerow([audio, f"{s:.3f}", f"{e:.3f}", label, "" if c is None else f"{c:.4f}"])

    def _audacity(self, audio, events) -> None:
        for s, e, label, _ in events:
            self.stream.write(f"{s:.6f}\t{e:.6f}\t{label}\n")

    def _srt(self, audio, events) -> None:
        for s, e, label, _ in events:
            self._cue += 1
            self.stream.write(f"{self._cue}\n{srt_time(s)} --> {srt_time(e)}\n{label}\n\n")

    def _vtt(self, audio, events) -> None:
        for s, e, label, _ in events:
            # cue text is HTML-like in WebVTT: escape what would start a tag or an entity
            text = label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            self.stream.write(f"\n{vtt_time(s)} --> {vtt_time(e)}\n{text}\n")

    def close(self) -> None:
        if self.fmt == "json":
            doc = self.document(self._files) if self.document is not None else {"files": self._files}
            self.stream.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        self.stream.flush()


# ---- readers (round trips, and labels back for users) ----------------------------------------
def read_audacity(text: str) -> list[tuple[float, float, str]]:
    """An Audacity label track -> [(start, end, label)]; spectral-selection lines (``\\t`` +
    frequencies, written by Audacity under a label) are skipped."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("\\"):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"label track line {n}: expected start<TAB>end<TAB>label, got {line!r}")
        out.append((float(parts[0]), float(parts[1]), parts[2] if len(parts) > 2 else ""))
    return out


def _cues(text: str) -> list[tuple[float, float, str]]:
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = block.splitlines()
        i = next((k for k, x in enumerate(lines) if "-->" in x), None)
        if i is None:
            continue  # a cue number alone, a NOTE or STYLE block
        start, _, end = lines[i].partition("-->")
        out.append((parse_timestamp(start), parse_timestamp(end.split()[0]), "\n".join(lines[i + 1:])))
    return out


def read_srt(text: str) -> list[tuple[float, float, str]]:
    """SubRip -> [(start, end, text)] in file order."""
    return _cues(text)


def read_vtt(text: str) -> list[tuple[float, float, str]]:
    """WebVTT -> [(start, end, text)] with entities decoded."""
    if not text.lstrip("\ufeff").startswith("WEBVTT"):
        raise ValueError("not a WebVTT file (no WEBVTT header)")
    return [(s, e, t.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")) for s, e, t in _cues(text)]
