"""The records every earmark package exchanges, and their JSONL files.

Three kinds of line (see DESIGN.md):

* a **manifest** line — one audio file and what is known about it::

    {"id": "spot-000123", "audio": "audio/spot-000123.flac", "duration": 52.91,
     "events": [{"query": "dog barking", "start": 12.40, "end": 13.90}],
     "caption": "a dog barks twice on a busy street", "split": "test", "source": "synth-longform"}

* a **query** line — what an evaluation asks::

    {"id": "q-000001", "audio_id": "spot-000123", "query": "dog barking", "negative": false,
     "windows": [[12.40, 13.90]]}

* a **prediction** line — the query's fields plus what a model answered (``windows`` become
  ``[start, end, score]`` triples)::

    {"id": "q-000001", "audio_id": "spot-000123", "query": "dog barking", "negative": false,
     "exists": true, "windows": [[12.3, 13.8, 0.91]], "raw": "Yes. From 12.30 ...", "engine": "hf",
     "ms": 41.2, "status": "strict"}

Times are seconds, written with two decimals. Audio paths are relative to the manifest file.
Events of the same query never overlap. Every check raises :class:`FormatError`, which names
the file, the line and the reason.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, TypeVar

__all__ = [
    "FormatError",
    "Event",
    "ManifestRecord",
    "QueryRecord",
    "PredictionRecord",
    "RECORD_KINDS",
    "read_jsonl",
    "iter_jsonl",
    "write_jsonl",
    "JsonlAppender",
    "detect_kind",
    "check_file",
    "check_query_fits",
    "check_audio_duration",
    "resolve_audio",
    "load_hf_dataset",
    "merge_events",
]

TIME_DECIMALS = 2
# a manifest duration may differ from its audio's header by rounding and codec padding, not more
DURATION_TOLERANCE_S = 0.1
DURATION_TOLERANCE_REL = 0.01


class FormatError(ValueError):
    """A record or file that breaks the contract. The message names the file and line."""

    def __init__(self, reason: str, *, path: str | os.PathLike | None = None, line: int | None = None):
        self.reason, self.path, self.line = reason, path, line
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(f"{where}{reason}")


def _round(t: float) -> float:
    return round(float(t), TIME_DECIMALS)


def _need(d: dict, key: str, types: type | tuple[type, ...], what: str) -> Any:
    if key not in d:
        raise FormatError(f"{what}: missing field {key!r}")
    value = d[key]
    # bool is an int subclass: a duration of `true` is a bug, not a number
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise FormatError(f"{what}: field {key!r} must be {_type_name(types)}, got {value!r}")
    if not isinstance(value, types):
        raise FormatError(f"{what}: field {key!r} must be {_type_name(types)}, got {value!r}")
    return value


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)


def _finite(x: float, what: str) -> float:
    if not math.isfinite(x):
        raise FormatError(f"{what}: {x!r} is not a finite number")
    return float(x)


def _check_window(start: float, end: float, what: str, duration: float | None = None) -> None:
    _finite(start, what)
    _finite(end, what)
    if start < 0:
        raise FormatError(f"{what}: start {start} is negative")
    if end <= start:
        raise FormatError(f"{what}: end {end} is not after start {start}")
    # a window may end on the last sample, rounded to two decimals
    if duration is not None and end > duration + 0.011:
        raise FormatError(f"{what}: end {end} is past the audio's duration {duration}")


def _check_unknown(d: dict, allowed: set[str], what: str) -> None:
    extra = set(d) - allowed
    if extra:
        raise FormatError(f"{what}: unknown field(s) {sorted(extra)}; allowed: {sorted(allowed)}")


@dataclass
class Event:
    """One occurrence of a sound described by ``query``, from ``start`` to ``end`` seconds."""

    query: str
    start: float
    end: float

    def to_dict(self) -> dict:
        return {"query": self.query, "start": _round(self.start), "end": _round(self.end)}

    @classmethod
    def from_dict(cls, d: dict, what: str = "event") -> "Event":
        if not isinstance(d, dict):
            raise FormatError(f"{what}: must be an object, got {d!r}")
        _check_unknown(d, {"query", "start", "end"}, what)
        query = _need(d, "query", str, what)
        if not query.strip():
            raise FormatError(f"{what}: empty query")
        start = float(_need(d, "start", (int, float), what))
        end = float(_need(d, "end", (int, float), what))
        _check_window(start, end, what)
        return cls(query, start, end)


def merge_events(events: Iterable[Event], gap: float = 0.0) -> list[Event]:
    """Merge same-query events that overlap (or are closer than ``gap`` s); sorted by start."""
    by_query: dict[str, list[Event]] = {}
    for e in events:
        by_query.setdefault(e.query, []).append(Event(e.query, e.start, e.end))
    out: list[Event] = []
    for q, evs in by_query.items():
        evs.sort(key=lambda e: e.start)
        merged = [evs[0]]
        for e in evs[1:]:
            if e.start <= merged[-1].end + gap:
                merged[-1].end = max(merged[-1].end, e.end)
            else:
                merged.append(e)
        out.extend(merged)
    out.sort(key=lambda e: (e.start, e.query))
    return out


@dataclass
class ManifestRecord:
    """One audio file and what is known about it. ``audio`` is relative to the manifest file."""

    id: str
    audio: str
    duration: float
    events: list[Event] = field(default_factory=list)
    caption: str | None = None
    split: str | None = None
    source: str | None = None
    # free-form provenance (source recordings, seeds, gains); never needed to use the record
    meta: dict | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "audio": self.audio, "duration": _round(self.duration),
                             "events": [e.to_dict() for e in self.events]}
        for k in ("caption", "split", "source", "meta"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ManifestRecord":
        what = "manifest record"
        if not isinstance(d, dict):
            raise FormatError(f"{what}: must be a JSON object, got {type(d).__name__}")
        _check_unknown(d, {f.name for f in dataclasses.fields(cls)}, what)
        rid = _need(d, "id", str, what)
        what = f"manifest record {rid!r}"
        if not rid:
            raise FormatError(f"{what}: empty id")
        audio = _need(d, "audio", str, what)
        if not audio:
            raise FormatError(f"{what}: empty audio path")
        duration = _finite(float(_need(d, "duration", (int, float), what)), what)
        if duration <= 0:
            raise FormatError(f"{what}: duration {duration} must be positive")
        raw_events = d.get("events", [])
        if not isinstance(raw_events, list):
            raise FormatError(f"{what}: 'events' must be a list")
        events = [Event.from_dict(e, f"{what} event {i}") for i, e in enumerate(raw_events)]
        for i, e in enumerate(events):
            _check_window(e.start, e.end, f"{what} event {i} ({e.query!r})", duration)
        _check_no_overlap(events, what)
        opt = {}
        for k in ("caption", "split", "source"):
            v = d.get(k)
            if v is not None and not isinstance(v, str):
                raise FormatError(f"{what}: field {k!r} must be a string, got {v!r}")
            opt[k] = v
        meta = d.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise FormatError(f"{what}: field 'meta' must be an object")
        return cls(rid, audio, duration, events, meta=meta, **opt)

    def windows(self, query: str) -> list[tuple[float, float]]:
        """The windows of every event whose query is ``query``, in time order."""
        return sorted((e.start, e.end) for e in self.events if e.query == query)


def _check_no_overlap(events: list[Event], what: str) -> None:
    by_query: dict[str, list[Event]] = {}
    for e in events:
        by_query.setdefault(e.query, []).append(e)
    for q, evs in by_query.items():
        evs = sorted(evs, key=lambda e: e.start)
        for a, b in zip(evs, evs[1:]):
            if b.start < a.end:
                raise FormatError(f"{what}: events of {q!r} overlap ({a.start}-{a.end} and {b.start}-{b.end}); merge them")


def _windows_from(raw: Any, what: str, width: int) -> list[tuple[float, ...]]:
    if not isinstance(raw, list):
        raise FormatError(f"{what}: 'windows' must be a list")
    out = []
    for i, w in enumerate(raw):
        if not isinstance(w, (list, tuple)) or len(w) != width or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in w):
            shape = "[start, end]" if width == 2 else "[start, end, score]"
            raise FormatError(f"{what}: window {i} must be {shape} numbers, got {w!r}")
        _check_window(float(w[0]), float(w[1]), f"{what} window {i}")
        if width == 3:
            _finite(float(w[2]), f"{what} window {i} score")
        out.append(tuple(float(x) for x in w))
    return out


@dataclass
class QueryRecord:
    """One question an evaluation asks about one audio file. Negative queries have no windows."""

    id: str
    audio_id: str
    query: str
    negative: bool
    windows: list[tuple[float, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"id": self.id, "audio_id": self.audio_id, "query": self.query, "negative": self.negative,
                "windows": [[_round(s), _round(e)] for s, e in self.windows]}

    @classmethod
    def from_dict(cls, d: dict) -> "QueryRecord":
        what = "query record"
        if not isinstance(d, dict):
            raise FormatError(f"{what}: must be a JSON object, got {type(d).__name__}")
        _check_unknown(d, {"id", "audio_id", "query", "negative", "windows"}, what)
        rid = _need(d, "id", str, what)
        what = f"query record {rid!r}"
        audio_id = _need(d, "audio_id", str, what)
        query = _need(d, "query", str, what)
        negative = _need(d, "negative", bool, what)
        windows = _windows_from(d.get("windows", []), what, 2)
        if negative and windows:
            raise FormatError(f"{what}: a negative query has no windows")
        if not negative and not windows:
            raise FormatError(f"{what}: a positive query needs at least one window")
        return cls(rid, audio_id, query, negative, [tuple(w) for w in windows])


@dataclass
class PredictionRecord:
    """What a model answered to one query: the query's fields plus the answer.

    ``status`` says how the answer was read (``strict``, ``lenient``, ``repaired``, ``unparsed``...)
    so that reports count what could not be parsed instead of hiding it.
    """

    id: str
    audio_id: str
    query: str
    negative: bool
    exists: bool
    windows: list[tuple[float, float, float]] = field(default_factory=list)
    raw: str = ""
    engine: str = ""
    ms: float = 0.0
    status: str = "strict"
    # an existence score in [0, 1] when the predictor has one (ROC-style metrics need it)
    score: float | None = None

    def to_dict(self) -> dict:
        d = {"id": self.id, "audio_id": self.audio_id, "query": self.query, "negative": self.negative,
             "exists": self.exists, "windows": [[_round(s), _round(e), round(float(c), 4)] for s, e, c in self.windows],
             "raw": self.raw, "engine": self.engine, "ms": round(float(self.ms), 2), "status": self.status}
        if self.score is not None:
            d["score"] = round(float(self.score), 6)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PredictionRecord":
        what = "prediction record"
        if not isinstance(d, dict):
            raise FormatError(f"{what}: must be a JSON object, got {type(d).__name__}")
        _check_unknown(d, {f.name for f in dataclasses.fields(cls)}, what)
        rid = _need(d, "id", str, what)
        what = f"prediction record {rid!r}"
        rec = cls(
            id=rid,
            audio_id=_need(d, "audio_id", str, what),
            query=_need(d, "query", str, what),
            negative=_need(d, "negative", bool, what),
            exists=_need(d, "exists", bool, what),
            windows=[tuple(w) for w in _windows_from(d.get("windows", []), what, 3)],
            raw=d.get("raw", "") if isinstance(d.get("raw", ""), str) else str(d.get("raw")),
            engine=str(d.get("engine", "")),
            ms=_finite(float(_need(d, "ms", (int, float), what)) if "ms" in d else 0.0, what),
            status=str(d.get("status", "strict")),
            score=None if d.get("score") is None else _finite(float(_need(d, "score", (int, float), what)), what),
        )
        return rec

    @classmethod
    def for_query(cls, q: QueryRecord, **answer) -> "PredictionRecord":
        return cls(id=q.id, audio_id=q.audio_id, query=q.query, negative=q.negative, **answer)


RECORD_KINDS = {"manifest": ManifestRecord, "queries": QueryRecord, "predictions": PredictionRecord}
T = TypeVar("T", ManifestRecord, QueryRecord, PredictionRecord)


def iter_jsonl(path: str | os.PathLike, cls: type[T], *, skip_bad: bool = False,
               errors: list[FormatError] | None = None) -> Iterator[T]:
    """Stream the records of a JSONL file, one line at a time.

    A bad line raises :class:`FormatError` naming the file and line; with ``skip_bad`` it is
    appended to ``errors`` (when given) and skipped — callers that skip must report the count.
    Blank lines are allowed. A truncated last line (a crash mid-write) is a bad line like any other.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise FormatError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
                rec = cls.from_dict(d)
            except FormatError as exc:
                err = FormatError(exc.reason, path=path, line=lineno)
                if not skip_bad:
                    raise err from None
                if errors is not None:
                    errors.append(err)
                continue
            yield rec


def read_jsonl(path: str | os.PathLike, cls: type[T], **kw) -> list[T]:
    """All records of a JSONL file (see :func:`iter_jsonl`); ids must be unique."""
    out = list(iter_jsonl(path, cls, **kw))
    seen: set[str] = set()
    for r in out:
        if r.id in seen:
            raise FormatError(f"duplicate id {r.id!r}", path=path)
        seen.add(r.id)
    return out


def _dump(rec) -> str:
    d = rec.to_dict() if hasattr(rec, "to_dict") else rec
    return json.dumps(d, ensure_ascii=False, allow_nan=False)


def write_jsonl(path: str | os.PathLike, records: Iterable, *, append: bool = False) -> int:
    """Write records (dataclasses or dicts), one JSON object a line. Returns the count written.

    Without ``append`` the file is written to a temporary name and renamed, so a crash never
    leaves a half-written manifest behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    if append:
        with open(path, "a", encoding="utf-8") as f:
            for r in records:
                f.write(_dump(r) + "\n")
                n += 1
        return n
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(_dump(r) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


class JsonlAppender:
    """Append records to a JSONL file as they are made, flushed line by line, so a batch run
    that crashes loses nothing it already finished and can resume.

    On open, an incomplete last line (a crash mid-write) is cut off, and the ids already written
    are available as :attr:`done`.
    """

    def __init__(self, path: str | os.PathLike, cls: type[T] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: set[str] = set()
        if self.path.exists():
            self._repair_tail()
            with open(self.path, "r", encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        d = json.loads(line)
                    except json.JSONDecodeError:
                        raise FormatError("not valid JSON; cannot resume from this file", path=self.path,
                                          line=lineno) from None
                    if cls is not None:
                        try:
                            cls.from_dict(d)
                        except FormatError as exc:
                            raise FormatError(exc.reason, path=self.path, line=lineno) from None
                    if not isinstance(d, dict):
                        raise FormatError("not a JSON object; cannot resume from this file", path=self.path,
                                          line=lineno)
                    self.done.add(d.get("id"))
        self._f: IO[str] = open(self.path, "a", encoding="utf-8")

    def _repair_tail(self) -> None:
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                try:  # a complete record without its newline (another writer's file) is kept
                    complete = isinstance(json.loads(data[cut:]), dict)
                except ValueError:  # a line torn by a crash mid-write
                    complete = False
                if complete:
                    f.write(b"\n")
                else:
                    f.truncate(cut)

    def write(self, rec) -> None:
        d = rec.to_dict() if hasattr(rec, "to_dict") else rec
        self._f.write(json.dumps(d, ensure_ascii=False, allow_nan=False) + "\n")
        self._f.flush()
        self.done.add(d["id"])

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def detect_kind(d: dict) -> str:
    """Which record kind a parsed line is, by its required fields (used only by ``data check``)."""
    if "audio" in d and "duration" in d:
        return "manifest"
    if "exists" in d:
        return "predictions"
    if "audio_id" in d:
        return "queries"
    raise FormatError(f"not a manifest, query or prediction record (fields: {sorted(d)[:8]})")


def check_query_fits(q: QueryRecord | PredictionRecord, durations: dict[str, float], manifest=None) -> None:
    """A query (or prediction) must name an audio id of the manifest, and its windows must end
    within that audio's duration (``durations``: audio id -> seconds, from ``manifest``)."""
    what = f"{'query' if isinstance(q, QueryRecord) else 'prediction'} record {q.id!r}"
    if q.audio_id not in durations:
        raise FormatError(f"{what}: audio id {q.audio_id!r} is not in the manifest {manifest or ''}".rstrip())
    for i, w in enumerate(q.windows):
        _check_window(w[0], w[1], f"{what} window {i}", durations[q.audio_id])


def check_audio_duration(rec: ManifestRecord, audio_path: str | os.PathLike) -> None:
    """The manifest's duration must be the audio file's (within rounding and codec padding)."""
    from .audio import AudioError, audio_info

    try:
        real = audio_info(audio_path).duration
    except AudioError as exc:
        raise FormatError(f"manifest record {rec.id!r}: audio {exc}") from None
    if abs(real - rec.duration) > max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_REL * real):
        raise FormatError(f"manifest record {rec.id!r}: duration {rec.duration} s, but its audio {audio_path} "
                          f"is {real:.2f} s long")


def check_file(path: str | os.PathLike, kind: str | None = None, *, check_audio: bool = False,
               max_errors: int = 20, manifest: str | os.PathLike | None = None) -> tuple[str, int, list[FormatError]]:
    """Validate every line of a JSONL file. Returns (kind, number of good records, errors).

    ``kind`` is guessed from the first line when not given. With ``check_audio`` every manifest
    line's audio file must exist and last the duration the line says. With ``manifest`` every
    query/prediction line must name one of its audio ids and keep its windows within that
    audio's duration.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    durations = None
    if manifest is not None:
        durations = {r.id: r.duration for r in read_jsonl(manifest, ManifestRecord)}
    errors: list[FormatError] = []
    good = 0
    seen: set[str] = set()
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise FormatError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
                if kind is None:
                    kind = detect_kind(d) if isinstance(d, dict) else "manifest"
                rec = RECORD_KINDS[kind].from_dict(d)
                if rec.id in seen:
                    raise FormatError(f"duplicate id {rec.id!r}")
                seen.add(rec.id)
                if check_audio and kind == "manifest":
                    p = resolve_audio(path, rec)
                    if not p.is_file():
                        raise FormatError(f"audio file {str(p)!r} does not exist")
                    check_audio_duration(rec, p)
                if durations is not None and kind != "manifest":
                    check_query_fits(rec, durations, manifest)
                good += 1
            except FormatError as exc:
                errors.append(FormatError(exc.reason, path=path, line=lineno))
                if len(errors) >= max_errors:
                    break
    return kind or "manifest", good, errors


def resolve_audio(manifest_path: str | os.PathLike, rec: ManifestRecord) -> Path:
    """The audio file of a manifest record: relative paths are relative to the manifest file."""
    p = Path(rec.audio)
    return p if p.is_absolute() else Path(manifest_path).resolve().parent / p


def load_hf_dataset(path: str | os.PathLike, split: str = "train"):
    """A manifest/query/prediction JSONL as a `datasets.Dataset` (validated first)."""
    kind, _, errors = check_file(path)
    if errors:
        raise errors[0]
    import datasets

    return datasets.load_dataset("json", data_files=str(path), split=split)
