"""Resumable benchmark runs: ask a predictor every query, append each answer as it comes.

:func:`run_eval` groups the queries by audio file, calls ``predictor.predict(audio, queries)``
once per file with the queries not yet answered, and appends each prediction to
``OUT/predictions.jsonl`` through :class:`data_recipes.formats.JsonlAppender` (flushed line by
line). A run killed at any point resumes with ``resume=True``: ids already in the file are
skipped, a torn last line is cut, so every query ends up answered exactly once. Which predictor
answered is kept in ``OUT/predictor.json``; a resume with another predictor (name, arguments,
engine, and the model its optional ``describe()`` reports) is refused, as is one with another
queries file, so no run mixes two models' answers.

A predictor that raises, returns something that is not a prediction, or leaves a query out does
not stop the run: each affected query is written with status ``error`` and the message, and is
scored as a wrong answer.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from data_recipes.formats import (FormatError, JsonlAppender, ManifestRecord, PredictionRecord, QueryRecord,
                                  check_audio_duration, check_file, check_query_fits, read_jsonl, resolve_audio)

from .predictors import Predictor

__all__ = ["RunSummary", "run_eval", "PREDICTIONS_FILE", "PREDICTOR_FILE"]

PREDICTIONS_FILE = "predictions.jsonl"
PREDICTOR_FILE = "predictor.json"
# an error message is kept to this length in the predictions file
_MAX_ERROR = 500


@dataclass(frozen=True)
class RunSummary:
    """What one call of :func:`run_eval` did."""

    predictions_path: Path
    n_queries: int
    n_skipped: int      # already answered (resume)
    n_answered: int     # answered in this call (errors included)
    n_errors: int       # written with status "error" in this call
    seconds: float


def _error_record(q: QueryRecord, message: str, engine: str) -> PredictionRecord:
    return PredictionRecord.for_query(q, exists=False, windows=[], raw=message[:_MAX_ERROR], engine=engine,
                                      status="error")


def run_eval(queries: str | Path | list[QueryRecord], manifest: str | Path, predictor: Predictor,
             out_dir: str | Path, *, resume: bool = False, progress: bool = True,
             identity: dict | None = None) -> RunSummary:
    """Ask ``predictor`` every query not yet in ``out_dir/predictions.jsonl``; append as it goes.

    Args:
        queries: a queries JSONL path (or the records).
        manifest: the manifest JSONL that holds every queried audio file (paths relative to it).
        predictor: any object with ``predict(audio_path, queries) -> list[PredictionRecord]``.
        out_dir: where ``predictions.jsonl`` is written.
        resume: continue an existing predictions file. Without it an existing non-empty file is
            refused (FileExistsError) rather than mixed with a new run.
        progress: show a tqdm bar (one step per query).
        identity: what makes this predictor this one (e.g. ``{"predictor": name, "predictor_args":
            {...}}``; JSON values), stored with its ``engine`` in ``out_dir/predictor.json``.

    Raises:
        ValueError: no queries; a query names an audio id the manifest does not have (all listed);
            two queries share an id; a query window ends after its audio; a queried audio file does
            not last the duration its manifest line says; or ``resume`` continues answers of
            another predictor.
    """
    t0 = time.perf_counter()
    qs = read_jsonl(queries, QueryRecord) if isinstance(queries, (str, Path)) else list(queries)
    seen: set[str] = set()
    for q in qs:
        if q.id in seen:
            raise ValueError(f"{queries}: duplicate query id {q.id!r}")
        seen.add(q.id)
    records = {r.id: r for r in read_jsonl(manifest, ManifestRecord)}
    unknown = sorted({q.audio_id for q in qs} - records.keys())
    if unknown:
        raise ValueError(f"{manifest}: {len(unknown)} queried audio id(s) not in the manifest: {unknown[:10]}")
    check_inputs(queries, qs, manifest, records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred_path = out / PREDICTIONS_FILE
    if pred_path.exists() and pred_path.stat().st_size > 0 and not resume:
        raise FileExistsError(f"{pred_path} already exists; pass resume=True (--resume) to continue it, "
                              f"or choose another output directory")
    engine = getattr(predictor, "engine", type(predictor).__name__)
    n_err = n_new = 0
    with JsonlAppender(pred_path, PredictionRecord) as app:
        extra = sorted(app.done - seen)
        if extra:
            raise ValueError(f"{pred_path}: holds {len(extra)} prediction(s) of queries not in {queries} "
                             f"(first: {extra[:5]}); resume only with the same queries file")
        ident = json.loads(json.dumps({**(identity or {}), "engine": engine, **_model_of(predictor)}, sort_keys=True,
                                      default=str))
        if app.done:
            _check_same_predictor(out / PREDICTOR_FILE, pred_path, ident)
        (out / PREDICTOR_FILE).write_text(json.dumps(ident, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        pending: dict[str, list[QueryRecord]] = {}
        for q in qs:
            if q.id not in app.done:
                pending.setdefault(q.audio_id, []).append(q)
        n_skipped = len(qs) - sum(len(v) for v in pending.values())
        bar = _bar(total=len(qs), initial=n_skipped, enabled=progress)
        try:
            for audio_id, batch in pending.items():
                audio_path = resolve_audio(manifest, records[audio_id])
                for rec in _answer(predictor, audio_path, batch, engine):
                    app.write(rec)
                    n_new += 1
                    n_err += rec.status == "error"
                bar.update(len(batch))
        finally:
            bar.close()
    return RunSummary(pred_path, len(qs), n_skipped, n_new, n_err, time.perf_counter() - t0)


def check_inputs(queries, qs: list[QueryRecord], manifest, records: dict[str, ManifestRecord]) -> None:
    """Refuse what would give meaningless numbers: no queries, a window past its audio's end, a
    manifest duration that is not its audio's (header read only)."""
    if not qs:
        raise ValueError(f"{queries}: no queries (the file has no records); nothing to evaluate")
    if isinstance(queries, (str, Path)):
        errors = check_file(queries, "queries", manifest=manifest)[2]
    else:
        durations = {k: r.duration for k, r in records.items()}
        errors = []
        for q in qs:
            try:
                check_query_fits(q, durations, manifest)
            except FormatError as exc:
                errors.append(exc)
    lines = _manifest_lines(manifest)
    for aid in sorted({q.audio_id for q in qs}):
        try:
            check_audio_duration(records[aid], resolve_audio(manifest, records[aid]))
        except FormatError as exc:
            errors.append(FormatError(exc.reason, path=manifest, line=lines.get(aid)))
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise FormatError("; ".join(str(e) for e in errors[:3]) + more)


def _manifest_lines(manifest) -> dict[str, int]:
    """Audio id -> line number in the manifest file (already validated), for error messages."""
    out = {}
    with open(manifest, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                out.setdefault(json.loads(line).get("id"), lineno)
    return out


def _model_of(predictor) -> dict:
    """``{"model": predictor.describe()}`` for a predictor that can say which model it loaded (the
    same arguments can load another model, e.g. a retrained default), else nothing."""
    describe = getattr(predictor, "describe", None)
    return {"model": describe()} if callable(describe) else {}


def _check_same_predictor(ident_path: Path, pred_path: Path, ident: dict) -> None:
    """Refuse to add this predictor's answers to a file holding another's."""
    if ident_path.is_file():
        try:
            before = json.loads(ident_path.read_text(encoding="utf-8"))
        except ValueError:
            raise ValueError(f"{ident_path}: not valid JSON; cannot tell which predictor wrote {pred_path}") from None
    else:  # a run older than predictor.json: its answers name their engine
        engines = set()
        with open(pred_path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    engines.add(json.loads(line).get("engine"))
        if engines <= {ident["engine"]}:
            return
        before = {"engine": ", ".join(sorted(map(str, engines)))}
    if before != ident:
        raise ValueError(f"{pred_path}: holds answers of another predictor ({_describe(before)}); this run is "
                         f"{_describe(ident)}. Resume only with the same --predictor and --predictor-arg values, "
                         f"or write to another --out")


def _describe(ident: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v, sort_keys=True) if not isinstance(v, str) else v}"
                     for k, v in sorted(ident.items()))


def _answer(predictor: Predictor, audio_path: Path, batch: list[QueryRecord], engine: str) -> list[PredictionRecord]:
    """One predict call, checked: one PredictionRecord per query (errors filled in)."""
    t0 = time.perf_counter()
    try:
        preds = predictor.predict(audio_path, list(batch))
        preds = list(preds) if preds is not None else []
    except Exception as exc:  # a failing model must not end the run: record it per query
        msg = f"{type(exc).__name__}: {exc}"
        return [_error_record(q, msg, engine) for q in batch]
    ms = 1000.0 * (time.perf_counter() - t0) / max(1, len(batch))
    by_id: dict[str, PredictionRecord] = {}
    problems: list[str] = []
    for p in preds:
        if isinstance(p, dict):
            try:
                p = PredictionRecord.from_dict(p)
            except FormatError as exc:
                problems.append(str(exc))
                continue
        if not isinstance(p, PredictionRecord):
            problems.append(f"predict returned a {type(p).__name__}, not a PredictionRecord")
            continue
        by_id[p.id] = p
    out = []
    for q in batch:
        p = by_id.get(q.id)
        if p is None:
            why = "; ".join(problems[:3]) or "predictor returned no answer for this query"
            out.append(_error_record(q, why, engine))
            continue
        if (p.audio_id, p.query, p.negative) != (q.audio_id, q.query, q.negative):
            out.append(_error_record(q, "predictor answered with another query's audio_id/query/negative", engine))
            continue
        if not p.ms:
            p.ms = ms
        if not p.engine:
            p.engine = engine
        out.append(p)
    return out


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="query", desc="earmark eval", dynamic_ncols=True)
