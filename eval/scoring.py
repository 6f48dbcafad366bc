"""Score a predictions file against its queries: id checks, per-query outcomes, overall and
per-class metrics. Everything a report prints comes from here, so it can be recomputed from the
predictions file (plus the queries, which hold the true windows) at any time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from data_recipes.formats import FormatError, ManifestRecord, PredictionRecord, QueryRecord, check_file, read_jsonl

from .metrics import (F1_IOU_THRESHOLD, R1_THRESHOLDS, GroundingMetrics, QueryOutcome, grounding_metrics,
                      query_outcome)
from data_recipes.answers import parse_answer

__all__ = ["IdCheck", "EvalResult", "check_ids", "score_predictions", "score_files", "ScoringConfig"]


@dataclass(frozen=True)
class IdCheck:
    """Query ids with no prediction (``missing``) and predictions of no query (``extra``)."""

    missing: list[str]
    extra: list[str]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra

    def describe(self, limit: int = 10) -> str:
        def show(ids):
            head = ", ".join(repr(i) for i in ids[:limit])
            return head + (f" ... ({len(ids) - limit} more)" if len(ids) > limit else "")
        parts = []
        if self.missing:
            parts.append(f"Missing ids ({len(self.missing)}): {show(self.missing)}")
        if self.extra:
            parts.append(f"Additional ids ({len(self.extra)}): {show(self.extra)}")
        return ". ".join(parts) or "ids match"


def check_ids(query_ids, prediction_ids) -> IdCheck:
    """Compare id sets, like sed_scores_eval's io checks (sorted lists of each difference)."""
    q, p = set(query_ids), set(prediction_ids)
    return IdCheck(missing=sorted(q - p), extra=sorted(p - q))


@dataclass
class ScoringConfig:
    """How predictions are scored. ``allow_missing`` counts a query with no prediction as a wrong
    answer (status ``missing``) and ignores predictions of unknown queries (both listed in the
    report) instead of refusing to score; ``reparse`` re-reads every ``raw`` answer with
    :func:`data_recipes.answers.parse_answer` instead of trusting the stored ``exists``/``windows``."""

    r1_thresholds: tuple[float, ...] = R1_THRESHOLDS
    f1_iou_threshold: float = F1_IOU_THRESHOLD
    allow_missing: bool = False
    reparse: bool = False

    def __post_init__(self):
        self.r1_thresholds = tuple(float(t) for t in self.r1_thresholds)
        for t in self.r1_thresholds:
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"r1_thresholds: {t} is not in [0, 1]")
        if not 0.0 <= float(self.f1_iou_threshold) < 1.0:
            raise ValueError(f"f1_iou_threshold: {self.f1_iou_threshold} is not in [0, 1)")


@dataclass
class EvalResult:
    """The scored run: overall metrics, per-class metrics (class = query text), every outcome."""

    overall: GroundingMetrics
    per_class: dict[str, GroundingMetrics]
    outcomes: list[QueryOutcome]
    id_check: IdCheck
    config: ScoringConfig
    # per query id: true windows, predicted windows, duration (for plots)
    details: dict[str, dict] = field(default_factory=dict)


def score_predictions(queries: list[QueryRecord], predictions: list[PredictionRecord], *,
                      config: ScoringConfig | None = None,
                      durations: dict[str, float] | None = None) -> EvalResult:
    """Score ``predictions`` against ``queries``.

    Raises ValueError when ids do not match (listing missing and additional ids) unless
    ``config.allow_missing``, or when a prediction disagrees with its query about the audio,
    the query text or whether it is negative. ``durations`` (audio id → seconds) is used to clip
    re-parsed windows and to draw timelines.
    """
    config = config or ScoringConfig()
    if not queries:
        raise ValueError("no queries to score: every metric would be undefined")
    by_id = {p.id: p for p in predictions}
    ids = check_ids([q.id for q in queries], by_id)
    if not ids.ok and not config.allow_missing:
        raise ValueError(f"predictions do not match the queries. {ids.describe()}")
    mismatched = []
    for q in queries:
        p = by_id.get(q.id)
        if p is not None and (p.audio_id, p.query, p.negative) != (q.audio_id, q.query, q.negative):
            mismatched.append(q.id)
    if mismatched:
        raise ValueError(f"{len(mismatched)} prediction(s) disagree with their query on audio_id/query/negative "
                         f"(first: {mismatched[:5]}); were they made for another queries file?")
    durations = durations or {}
    outcomes: list[QueryOutcome] = []
    details: dict[str, dict] = {}
    for q in queries:
        p = by_id.get(q.id)
        score = None if p is None or p.status == "error" else p.score
        if p is None:
            exists, windows, status, raw = False, [], "missing", ""
        elif config.reparse and p.status not in ("error",):
            parsed = parse_answer(p.raw, duration=durations.get(q.audio_id))
            exists, windows, status, raw = bool(parsed.exists), list(parsed.windows), parsed.status, p.raw
        else:
            exists, windows, status, raw = p.exists, [w[:2] for w in p.windows], p.status, p.raw
        o = query_outcome(id=q.id, audio_id=q.audio_id, query=q.query, negative=q.negative,
                          true_windows=q.windows, exists=exists, pred_windows=windows, status=status,
                          iou_threshold=config.f1_iou_threshold, score=score)
        outcomes.append(o)
        details[q.id] = {"true": [list(w) for w in q.windows], "pred": [list(w[:2]) for w in windows],
                         "duration": durations.get(q.audio_id), "raw": raw}
    overall = grounding_metrics(outcomes, r1_thresholds=config.r1_thresholds,
                                f1_iou_threshold=config.f1_iou_threshold)
    groups: dict[str, list[QueryOutcome]] = {}
    for o in outcomes:
        groups.setdefault(o.query, []).append(o)
    per_class = {name: grounding_metrics(group, r1_thresholds=config.r1_thresholds,
                                         f1_iou_threshold=config.f1_iou_threshold)
                 for name, group in sorted(groups.items())}
    return EvalResult(overall=overall, per_class=per_class, outcomes=outcomes, id_check=ids, config=config,
                      details=details)


def read_durations(manifest_path: str | Path | None) -> dict[str, float]:
    if manifest_path is None:
        return {}
    return {r.id: r.duration for r in read_jsonl(manifest_path, ManifestRecord)}


def score_files(predictions_path: str | Path, queries_path: str | Path, *, manifest_path: str | Path | None = None,
                config: ScoringConfig | None = None) -> EvalResult:
    """:func:`score_predictions` on files (the manifest, optional, gives durations)."""
    queries = read_jsonl(queries_path, QueryRecord)
    if not queries:
        raise ValueError(f"{queries_path}: no queries (the file has no records); nothing to score")
    if manifest_path is not None:
        errors = check_file(queries_path, "queries", manifest=manifest_path)[2]
        if errors:
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise FormatError("; ".join(str(e) for e in errors[:3]) + more)
    predictions = read_jsonl(predictions_path, PredictionRecord)
    return score_predictions(queries, predictions, config=config, durations=read_durations(manifest_path))

