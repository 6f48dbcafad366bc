"""`earmark serve`: the ask/detect HTTP API and a page to try it on, on localhost by default.

    earmark serve [--host 127.0.0.1] [--port 8000] [--scorer DIR] [--grounder DIR] [--mode ...]
                  [--max-upload-mb 100] [--max-seconds 1200] [--timeout 120]

The models are loaded once, at start, exactly as `earmark ask` loads them (the same options).
Endpoints (described at ``/openapi.json``):

* ``POST /api/ask``: multipart ``audio`` (an upload) or ``example`` (a name from
  ``/api/examples``) or ``audio_id`` (from an earlier answer), and ``queries`` (repeated, or one
  per line) -> one answer per query, with its windows and the scorer's curve for a timeline.
* ``POST /api/detect``: the same recording fields and ``phrases`` -> per phrase its existence
  probability, its intervals and its curve (what `earmark detect` prints).
* ``GET /api/examples``, ``GET /api/info``, ``GET /api/audio/{audio_id}`` (playback of a recording
  the server holds, by an id the server made: a request never names a file on the server).

Limits: a body over ``--max-upload-mb`` is refused with 413 while it streams in; a recording over
``--max-seconds`` with 422; model work runs on one worker thread and a request that waits longer
than ``--timeout`` gets 504 (503 when it never started because an earlier request still holds the
worker). Input that is not usable audio gets 422 naming the upload. The page (``static/index.html``)
loads nothing from outside the server.
"""
# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time,
# and their types are imported inside create_app (fastapi is an optional extra)
import argparse
import asyncio
import json
import math
import re
import shutil
import socket
import sys
import tempfile
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .ask_cli import _errors, _load, _model_args

STATIC_DIR = Path(__file__).with_name("static")
_REPO = Path(__file__).resolve().parents[1]
# clips the repository ships with their true windows beside them (a source checkout or an editable
# install has them; a wheel does not, and the page then offers uploads only)
EXAMPLE_DIRS = (_REPO / "scripts" / "examples", _REPO / "tests" / "data")
CURVE_POINTS = 800        # a timeline is a few hundred pixels wide: more points only cost bytes
MAX_QUERIES = 20
MAX_QUERY_CHARS = 500
AUDIO_MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
                     ".opus": "audio/ogg", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac",
                     ".webm": "audio/webm", ".aif": "audio/aiff", ".aiff": "audio/aiff"}
_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
# the page may run only its own inline script and fetch only from this server
PAGE_CSP = ("default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; "
            "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'")


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 100.0
    max_seconds: float = 1200.0
    timeout: float = 120.0
    keep_uploads: int = 32    # uploads kept on disk for playback and re-asking; the oldest go first

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class RequestError(Exception):
    """A request the server refuses: the HTTP status and one message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# ---- recordings the server holds ----------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    id: str
    path: Path
    name: str          # what messages and the page call it: the upload's file name or the example's name
    media_type: str


@dataclass(frozen=True)
class Example:
    name: str
    path: Path
    duration: float
    queries: tuple[str, ...]   # what the clip's annotations say sounds in it


def _example_queries(jsonl: Path) -> tuple[str, ...]:
    """Queries named by a clip's annotation file: records with a "query" or with "events"."""
    out: list[str] = []
    if not jsonl.is_file():
        return ()
    for line in jsonl.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict):
            continue
        qs = [rec.get("query")] + [e.get("query") for e in rec.get("events") or [] if isinstance(e, dict)]
        for q in qs:
            if isinstance(q, str) and q and q not in out:
                out.append(q)
    return tuple(out)


def find_examples(dirs=EXAMPLE_DIRS) -> dict[str, Example]:
    """The shipped example clips by name (file stem), each with the queries its annotations name."""
    from data_recipes.audio import AudioError, audio_info

    found: dict[str, Example] = {}
    for d in dirs:
        for p in sorted(Path(d).glob("*")) if Path(d).is_dir() else []:
            name = re.sub(r"[^A-Za-z0-9_-]", "-", p.stem)
            if p.suffix.lower() not in AUDIO_MEDIA_TYPES or name in found:
                continue
            try:
                duration = audio_info(p).duration
            except AudioError:
                continue
            found[name] = Example(name, p, round(duration, 2), _example_queries(p.with_suffix(".jsonl")))
    return found


class AudioStore:
    """Recordings by opaque ids the server made: the examples, and uploads saved in a private
    temporary directory (the newest ``keep`` of them; the directory goes when the server stops)."""

    def __init__(self, examples: dict[str, Example], keep: int):
        self.dir = Path(tempfile.mkdtemp(prefix="earmark-serve-"))
        self.keep = keep
        self._lock = threading.Lock()
        self._uploads: OrderedDict[str, Recording] = OrderedDict()
        self._examples = {f"example-{e.name}": Recording(f"example-{e.name}", e.path, e.name,
                                                         AUDIO_MEDIA_TYPES[e.path.suffix.lower()])
                          for e in examples.values()}

    def example(self, name: str) -> Recording | None:
        return self._examples.get(f"example-{name}")

    def get(self, rec_id: str) -> Recording | None:
        if not _ID.match(rec_id):
            return None
        with self._lock:
            return self._examples.get(rec_id) or self._uploads.get(rec_id)

    def new_upload(self, filename: str) -> Recording:
        """A fresh file in the store for an upload; only the suffix of the client's name is used
        (decoders read the format from the header; the browser plays by the media type)."""
        suffix = Path(filename or "").suffix.lower()
        if suffix not in AUDIO_MEDIA_TYPES:
            suffix = ""
        rec_id = uuid.uuid4().hex
        rec = Recording(rec_id, self.dir / f"{rec_id}{suffix}", Path(filename or "upload").name or "upload",
                        AUDIO_MEDIA_TYPES.get(suffix, "application/octet-stream"))
        with self._lock:
            self._uploads[rec_id] = rec
            while len(self._uploads) > self.keep:
                _, old = self._uploads.popitem(last=False)
                old.path.unlink(missing_ok=True)
        return rec

    def discard(self, rec: Recording) -> None:
        with self._lock:
            self._uploads.pop(rec.id, None)
        rec.path.unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- model work ---------------------------------------------------------------------------
class Worker:
    """One thread for all model work (the models are not shared between threads, and the CPU is
    better spent on one request at a time); a request waits at most ``timeout`` seconds."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="earmark-serve")

    async def run(self, fn, *args):
        fut = self._pool.submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout)
        except asyncio.TimeoutError:
            if fut.cancelled():   # never started: an earlier request still holds the worker
                raise RequestError(503, f"the server is busy with an earlier request (waited --timeout "
                                        f"{self.timeout:g} s); try again later") from None
            raise RequestError(504, f"the answer took longer than --timeout {self.timeout:g} s; try a shorter "
                                    f"recording or fewer queries") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def downsample_curve(times, values, n: int = CURVE_POINTS) -> dict:
    """At most ``n`` points of a curve for drawing: max-pooled, so a short peak stays visible."""
    import numpy as np

    t = np.asarray(times, dtype=np.float64)
    y = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    step = max(1, math.ceil(len(y) / n))
    if step > 1:
        m = len(y) // step * step
        t = np.r_[t[:m].reshape(-1, step).mean(1), t[m:].mean(keepdims=True) if m < len(t) else []]
        y = np.r_[y[:m].reshape(-1, step).max(1), y[m:].max(keepdims=True) if m < len(y) else []]
    return {"times": [round(float(v), 3) for v in t], "values": [round(float(v), 4) for v in y]}


def split_queries(values, field: str) -> list[str]:
    """Queries from repeated form fields, each of which may hold several lines."""
    out = [q.strip() for v in values or [] for q in str(v).splitlines() if q.strip()]
    if not out:
        raise RequestError(422, f"{field}: give at least one (one per line), e.g. \"a dog barks\"")
    if len(out) > MAX_QUERIES:
        raise RequestError(422, f"{field}: {len(out)} given, at most {MAX_QUERIES} per request")
    long = next((q for q in out if len(q) > MAX_QUERY_CHARS), None)
    if long is not None:
        raise RequestError(422, f"{field}: {long[:40]!r}... has {len(long)} characters, at most {MAX_QUERY_CHARS}")
    return out


class Service:
    """The loaded models and what a request does with them (run on the worker thread)."""

    def __init__(self, grounder, limits: Limits, examples: dict[str, Example]):
        self.grounder = grounder
        self.scorer = grounder.pipeline.scorer     # detect uses the scorer ask loaded (none in --mode llm)
        self.limits = limits
        self.examples = examples
        self.store = AudioStore(examples, limits.keep_uploads)
        self.worker = Worker(limits.timeout)
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.worker.close()
        self.store.close()
        self.grounder.close()

    def _clean(self, message: str, rec: Recording) -> str:
        """An error message with the server's file path replaced by the recording's own name."""
        return message.replace(str(rec.path), rec.name).replace(str(self.store.dir), "upload")

    def _checked(self, rec: Recording) -> float:
        """The recording's duration, once it is known to be usable audio within the limits."""
        from data_recipes.audio import audio_info

        duration = audio_info(rec.path).duration
        if not duration > 0 or not math.isfinite(duration):
            raise RequestError(422, f"{rec.name}: no audio samples")
        if duration > self.limits.max_seconds:
            raise RequestError(422, f"{rec.name}: {duration:.1f} s long; this server takes recordings up to "
                                    f"--max-seconds {self.limits.max_seconds:g} s")
        return duration

    def _guarded(self, rec: Recording, work):
        from data_recipes.audio import AudioError

        try:
            return work()
        except AudioError as exc:
            raise RequestError(422, self._clean(f"{rec.name}: {exc.reason}", rec)) from None
        except MemoryError:
            raise RequestError(503, f"{rec.name}: out of memory while answering; try a shorter recording") from None
        except _errors() as exc:
            raise RequestError(422, self._clean(str(exc), rec)) from None

    def ask(self, rec: Recording, queries: list[str]) -> dict:
        def work():
            duration = self._checked(rec)
            answers = self.grounder.pipeline.ask_many(str(rec.path), queries, name=rec.name)
            return {"duration": round(duration, 3), "mode": self.grounder.mode,
                    "answers": [_answer_out(a, self._event_threshold()) for a in answers]}
        return self._guarded(rec, work)

    def _event_threshold(self) -> float | None:
        """The frame threshold the scorer's events are counted at (as `earmark ask` counts them)."""
        if self.grounder.pipeline.scorer is None:
            return None
        t = self.grounder.config.event_threshold
        return self.grounder.pipeline.scorer.threshold if t is None else t

    def detect(self, rec: Recording, phrases: list[str]) -> dict:
        if self.scorer is None:
            raise RequestError(503, "detect needs a scorer and this server runs without one (--mode llm); "
                                    "restart it with --mode auto or --scorer DIR")
        sc = self.scorer

        def work():
            duration = self._checked(rec)
            emb = sc.embed(str(rec.path), name=rec.name)
            fs = sc.frame_scores(emb, phrases)
            events = sc.events(fs, phrases)
            # the curve the intervals are thresholded on (the raw one crosses it with no interval)
            smooth = sc.smoothed(fs)
            out = []
            for k, ph in enumerate(phrases):
                p = sc.exists(emb, ph)
                out.append({"phrase": ph, "exists": round(p, 4), "present": p >= sc.exists_threshold,
                            "events": [{"start": round(e.start, 2), "end": round(e.end, 2),
                                        "confidence": round(e.score, 4)} for e in events if e.phrase == ph],
                            "curve": downsample_curve(fs.times(), smooth[k])})
            return {"duration": round(duration, 3), "threshold": sc.threshold,
                    "exists_threshold": sc.exists_threshold, "phrases": out}
        return self._guarded(rec, work)


def _answer_out(a, event_threshold: float | None) -> dict:
    from .ask_cli import answer_record

    rec = answer_record(a, event_threshold)   # what `earmark ask --format json` adds: counts and notes
    return {"query": a.query, "exists": bool(a.exists),
            "events_total": rec.get("events_total"), "event_threshold": rec.get("event_threshold"),
            "notes": rec.get("notes", []),
            "score": None if a.score is None else round(float(a.score), 4),
            "decided_by": a.decided_by, "mode": a.mode,
            "windows": [{"start": round(w.start, 2), "end": round(w.end, 2), "confidence": round(float(w.confidence), 4)}
                        for w in a.windows],
            "curve": None if a.curve is None else downsample_curve(*a.curve)}


# ---- the app ------------------------------------------------------------------------------
def create_app(service: Service):
    """The FastAPI app over a loaded :class:`Service`."""
    from contextlib import asynccontextmanager
    from typing import Annotated, Literal

    from fastapi import FastAPI, File, Form, HTTPException, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from pydantic import BaseModel, Field

    class ErrorOut(BaseModel):
        detail: str = Field(description="what was wrong, naming the field or the upload")

    class WindowOut(BaseModel):
        start: float = Field(description="seconds")
        end: float = Field(description="seconds")
        confidence: float = Field(description="how sure the model is of this window, in [0, 1]")

    class CurveOut(BaseModel):
        times: list[float] = Field(description="seconds, ascending")
        values: list[float] = Field(description="the scorer's frame probability (median-filtered), max-pooled "
                                                f"to at most {CURVE_POINTS} points")

    class AnswerOut(BaseModel):
        query: str
        exists: bool = Field(description="does it happen in the recording at all?")
        score: float | None = Field(description="existence score in [0, 1] (not a window confidence)")
        decided_by: str
        mode: str
        windows: list[WindowOut] = Field(description="when it happens (empty when exists is false); at most "
                                                     "--top-k of the events")
        events_total: int | None = Field(description="intervals where the scorer's curve is above event_threshold: "
                                                     "more than len(windows) when only some are shown")
        event_threshold: float | None
        notes: list[str] = Field(description="warnings about the query (e.g. not English)")
        curve: CurveOut | None = Field(description="the scorer's curve; null without a scorer (--mode llm)")

    class AskOut(BaseModel):
        audio_id: str = Field(description="for GET /api/audio/{audio_id} and to ask again without uploading")
        audio_name: str
        duration: float
        mode: str
        answers: list[AnswerOut]

    class PhraseOut(BaseModel):
        phrase: str
        exists: float = Field(description="existence probability in [0, 1]")
        present: bool = Field(description="exists >= the scorer's existence threshold")
        events: list[WindowOut] = Field(description="intervals where the filtered curve is above threshold")
        curve: CurveOut

    class DetectOut(BaseModel):
        audio_id: str
        audio_name: str
        duration: float
        threshold: float = Field(description="the curve threshold of the intervals")
        exists_threshold: float
        phrases: list[PhraseOut]

    class ExampleOut(BaseModel):
        name: str
        audio_id: str
        duration: float
        queries: list[str] = Field(description="what its annotations say sounds in it")

    class InfoOut(BaseModel):
        mode: str
        grounder: str | None
        scorer: str | None
        detect: bool = Field(description="whether /api/detect is available (it needs a scorer)")
        max_upload_mb: float
        max_seconds: float
        timeout: float
        max_queries: int

    refusals = {s: {"model": ErrorOut} for s in (400, 404, 413, 422, 503, 504)}   # 400: unreadable multipart

    @asynccontextmanager
    async def lifespan(app):
        yield
        service.close()

    app = FastAPI(title="earmark", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="When does X happen in this recording? Ask and detect over HTTP.")
    app.add_middleware(BodyLimit, limits=service.limits)
    page = (STATIC_DIR / "index.html").read_text()

    @app.exception_handler(RequestError)
    async def refused(request, exc: RequestError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_message(exc.errors())}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        # the response says what kind of failure, never where (the server's log has the traceback)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server's log"},
                            status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/api/info", response_model=InfoOut)
    async def info():
        g = service.grounder
        # the models' directory names, not where they lie on the server
        names = {k: Path(v).name if v else None for k, v in g.sources.items()}
        return {"mode": g.mode, "grounder": names.get("grounder"), "scorer": names.get("scorer"),
                "detect": service.scorer is not None, "max_upload_mb": service.limits.max_upload_mb,
                "max_seconds": service.limits.max_seconds, "timeout": service.limits.timeout,
                "max_queries": MAX_QUERIES}

    @app.get("/api/examples", response_model=list[ExampleOut])
    async def examples():
        return [{"name": e.name, "audio_id": f"example-{e.name}", "duration": e.duration, "queries": list(e.queries)}
                for e in service.examples.values()]

    @app.get("/api/audio/{audio_id}", response_class=FileResponse, responses={404: {"model": ErrorOut}})
    async def audio(audio_id: str):
        rec = service.store.get(audio_id)
        if rec is None or not rec.path.is_file():
            raise RequestError(404, f"audio_id {audio_id[:80]!r}: no such recording on this server (uploads "
                                    f"are kept for the last {service.limits.keep_uploads} requests)")
        return FileResponse(rec.path, media_type=rec.media_type, headers={"X-Content-Type-Options": "nosniff"})

    async def recording(audio, example, audio_id) -> tuple[Recording, bool]:
        """The recording a request is about, and whether it is a new upload."""
        given = [n for n, v in (("audio", audio), ("example", example), ("audio_id", audio_id))
                 if v not in (None, "") and not (n == "audio" and isinstance(v, str))]
        if len(given) != 1:
            raise RequestError(422, "give exactly one of: audio (an upload), example (a name from /api/examples) "
                                    f"or audio_id (from an earlier answer); got {', '.join(given) or 'none'}")
        if example:
            rec = service.store.example(example)
            if rec is None:
                names = ", ".join(service.examples) or "none on this server"
                raise RequestError(422, f"example {example[:80]!r}: no such example ({names})")
            return rec, False
        if audio_id:
            rec = service.store.get(audio_id)
            if rec is None or not rec.path.is_file():
                raise RequestError(422, f"audio_id {audio_id[:80]!r}: no such recording on this server")
            return rec, False
        rec = service.store.new_upload(audio.filename or "upload")
        size = await asyncio.to_thread(_save, audio.file, rec.path)
        if size == 0:
            service.store.discard(rec)
            raise RequestError(422, f"{rec.name}: empty file (0 bytes)")
        return rec, True

    async def answer(audio, example, audio_id, task, values, field):
        queries = split_queries(values, field)
        rec, fresh = await recording(audio, example, audio_id)
        try:
            out = await service.worker.run(task, rec, queries)
        except RequestError:
            if fresh:
                service.store.discard(rec)   # not audio, or refused: nothing to play back
            raise
        return {"audio_id": rec.id, "audio_name": rec.name, **out}

    # optional fields default to None but are not declared nullable: a multipart form cannot send
    # a null, only leave the field out. The examples' names are an enum: the OpenAPI description
    # lists them, and a client (or a fuzzer) can reach the models through them
    ExampleName = Literal[tuple(service.examples)] if service.examples else str
    Audio = Annotated[UploadFile, File(description="the recording (wav, flac, ogg, mp3, ...; any rate and channels)")]
    ExampleField = Annotated[ExampleName, Form(description="instead of audio: the name of a shipped example "
                                                           "(GET /api/examples)")]
    AudioId = Annotated[str, Form(description="instead of audio: the audio_id of an earlier answer")]

    Queries, Phrases = (Annotated[list[str], Form(min_length=1, max_length=MAX_QUERIES, description=(
        f"what to look for; repeat the field or put one {what} per line"))] for what in ("query", "phrase"))

    @app.post("/api/ask", response_model=AskOut, responses=refusals)
    async def ask(queries: Queries, audio: Audio = None, example: ExampleField = None, audio_id: AudioId = None):
        """Does each query happen in the recording, and when? (`earmark ask`)"""
        return await answer(audio, example, audio_id, service.ask, queries, "queries")

    @app.post("/api/detect", response_model=DetectOut, responses=refusals)
    async def detect(phrases: Phrases, audio: Audio = None, example: ExampleField = None,
                     audio_id: AudioId = None):
        """Every interval of each phrase, with the scorer's curves (`earmark detect`)."""
        return await answer(audio, example, audio_id, service.detect, phrases, "phrases")

    return app


def _save(src, path: Path) -> int:
    """Copy an upload (already spooled by the multipart parser) into the store; its size."""
    src.seek(0)
    with open(path, "wb") as f:
        shutil.copyfileobj(src, f, 1 << 20)
        return f.tell()


def _too_large_message(limits: Limits) -> str:
    return f"upload larger than --max-upload-mb {limits.max_upload_mb:g} MB"


class BodyLimit:
    """ASGI middleware: a body over the limit is refused with 413 from its Content-Length, or, when
    chunked or lying about its length, as soon as that many bytes came in (before the multipart
    parser spools the rest to disk)."""

    def __init__(self, app, limits: Limits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.max_upload_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            body = json.dumps({"detail": _too_large_message(self.limits)}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                    (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})
        seen = 0

        async def counted():
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > limit:
                from fastapi import HTTPException

                # an HTTPException passes FastAPI's body parsing unchanged (others become 400)
                raise HTTPException(413, _too_large_message(self.limits))
            return msg

        await self.app(scope, counted, send)


def _validation_message(errors) -> str:
    """FastAPI's validation errors as one line naming each field (without echoing the input)."""
    parts = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "header")]
        parts.append(f"{'.'.join(loc) or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


# ---- command line -------------------------------------------------------------------------
def _bounded(name: str, lo: float, hi: float, kind=float):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not (lo <= v <= hi):
            raise argparse.ArgumentTypeError(f"{text} is outside [{lo:g}, {hi:g}]")
        return v
    parse.__name__ = name
    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="earmark serve", description="The ask/detect HTTP API and a page to try it "
                                "on (http://HOST:PORT/; the API is described at /openapi.json)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                   "only; anyone who can reach another address can upload recordings)")
    p.add_argument("--port", type=_bounded("port", 1, 65535, int), default=8000, help="default 8000")
    p.add_argument("--max-upload-mb", type=_bounded("size", 0.001, 1e5), default=100.0,
                   help="largest upload in MB (default 100; larger: 413)")
    p.add_argument("--max-seconds", type=_bounded("duration", 0.1, 1e6), default=1200.0,
                   help="longest recording in seconds (default 1200; longer: 422)")
    p.add_argument("--timeout", type=_bounded("timeout", 0.1, 86400), default=120.0,
                   help="seconds a request may take (default 120; longer: 504)")
    _model_args(p)
    return p


def _check_port(host: str, port: int) -> None:
    """Fail before the models load when the address cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise ValueError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None


def serve_main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn
    except ImportError as exc:
        print(f"earmark serve: error: needs the serve extra ({exc.name} is missing): "
              f"pip install 'earmark[serve]'", file=sys.stderr)
        return 1
    limits = Limits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds, timeout=args.timeout)
    try:
        _check_port(args.host, args.port)
        grounder = _load(args)
    except _errors() as exc:
        print(f"earmark serve: error: {exc}", file=sys.stderr)
        return 1
    service = Service(grounder, limits, find_examples())
    app = create_app(service)
    models = ", ".join(f"{k} {v}" for k, v in grounder.sources.items() if v)
    print(f"earmark serve: http://{_url_host(args.host)}:{args.port}/ (mode {grounder.mode}: {models}; "
          f"API: /openapi.json; Ctrl-C stops)", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        service.close()   # also when uvicorn ends without running the app's shutdown
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":
    sys.exit(serve_main())
