"""Grounding metrics: IoU over unions of windows, mIoU, R1@θ, existence accuracy, two-stage F1.

Pure functions: numpy arrays (or window lists) in, floats or small dataclasses out. Percentages
are 0-100, as SpotSound reports them.

How each query is counted (SpotSound §4.1-4.3, arXiv 2604.13023, made exact here):

* **IoU** of a query is computed between the *union* of its true windows and the *union* of the
  predicted windows (several windows are one set of time, not a matching problem). A positive
  query answered "no", answered with no window, or not parsed has IoU 0.
* **mIoU and R1@θ** are averaged over the *positive* queries only: SpotSound's localisation
  benchmarks (§4.1) contain positives only; negatives are judged by existence accuracy (§4.2)
  and the two-stage F1 (§4.3). ``N`` in the formulas below is the number of positive queries.
* **Existence accuracy** is reported on positives (said "yes") and on negatives (said "no")
  separately, and over both.
* **Two-stage F1** puts every query in exactly one cell (a query is one decision, never two):

  ==================  ==========================  ======
  query               answer                      cell
  ==================  ==========================  ======
  positive            "yes" and IoU > 0.3         TP
  positive            "yes" and IoU <= 0.3        FP
  positive            "no"                        FN
  negative            "yes"                       FP
  negative            "no"                        TN
  ==================  ==========================  ======

  F1 = 2·TP / (2·TP + FP + FN). A poorly localised "yes" is one FP, as §4.3 says ("any predicted
  event that yields an IoU of 0.3 or lower is classified as a false positive"); it is not also
  counted as an FN.
* **Unparsed, errored or missing answers are wrong**, never skipped: existence is counted as
  incorrect whatever the query (so on a negative they are not credited as "no"), IoU is 0, and
  the F1 cell is FN on a positive and FP on a negative.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "R1_THRESHOLDS", "F1_IOU_THRESHOLD", "UNANSWERED_STATUSES",
    "union_windows", "union_length", "iou",
    "mean_iou", "recall_at_iou", "existence_accuracy", "existence_auroc", "two_stage_f1",
    "ExistenceAccuracy", "TwoStageF1", "QueryOutcome", "GroundingMetrics",
    "query_outcome", "grounding_metrics",
]

#: R1@θ thresholds reported by default (SpotSound uses 0.3 and 0.5; 0.7 is the strict one)
R1_THRESHOLDS = (0.3, 0.5, 0.7)
#: the IoU a "yes" must exceed to be a true positive in the two-stage F1 (SpotSound §4.3)
F1_IOU_THRESHOLD = 0.3
#: prediction statuses that are failures, counted as wrong answers: the answer text could not be
#: read (``unparsed``), the predictor failed (``error``), or there is no prediction (``missing``).
#: Every other status is an answer: the parser's ``strict``/``lenient``/``repaired``, or a
#: predictor's own (e.g. a pipeline whose scorer said "no" without asking the LLM); all are
#: counted in the report's status table.
UNANSWERED_STATUSES = frozenset({"unparsed", "error", "missing"})


def _union_list(windows) -> list[tuple[float, float]]:
    """Union as a sorted list of disjoint (start, end); plain Python (a few windows per query
    is the common case, where numpy's per-call overhead dominates)."""
    ws = sorted((float(w[0]), float(w[1])) for w in windows)
    out: list[tuple[float, float]] = []
    for s, e in ws:
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def union_windows(windows) -> np.ndarray:
    """The union of ``windows`` as sorted, disjoint ``(start, end)`` rows, shape ``(k, 2)``.

    Rows may carry extra columns (a score); only the first two are read. Windows with
    ``end <= start`` cover no time and are dropped. Touching windows merge.
    """
    w = np.asarray(windows, dtype=float)
    if w.size == 0:
        return np.zeros((0, 2))
    if w.ndim != 2 or w.shape[1] < 2:
        raise ValueError(f"windows must be rows of (start, end[, ...]), got shape {w.shape}")
    return np.array(_union_list(w[:, :2].tolist()), dtype=float).reshape(-1, 2)


def union_length(windows) -> float:
    """|∪ W| — the total time covered by ``windows`` (overlaps counted once)."""
    return float(sum(e - s for s, e in _as_union(windows)))


def _as_union(windows) -> list[tuple[float, float]]:
    if isinstance(windows, np.ndarray):
        return [tuple(r) for r in union_windows(windows).tolist()]
    rows = list(windows)
    for r in rows:
        if len(r) < 2:
            raise ValueError(f"windows must be rows of (start, end[, ...]), got {r!r}")
    return _union_list(rows)


def iou(predicted, true) -> float:
    """Intersection over union of two sets of windows, taken over their unions.

    IoU(P, T) = |∪P ∩ ∪T| / |∪P ∪ ∪T|, with |·| the total length in seconds.

    Symmetric, in [0, 1]; 1 when both unions are the same time, 0 when they do not overlap.
    When both cover no time at all (e.g. both empty) the IoU is defined as 0: there is nothing
    that was localised.
    """
    p, t = _as_union(predicted), _as_union(true)
    if not p or not t:
        return 0.0
    inter = _intersection_length(p, t)
    union = sum(e - s for s, e in p) + sum(e - s for s, e in t) - inter
    if union <= 0.0:
        return 0.0
    # float rounding may push a perfect match a hair over 1
    return float(min(1.0, max(0.0, inter / union)))


def _intersection_length(a, b) -> float:
    """Total overlap of two sorted, disjoint window lists (a two-pointer sweep)."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return float(total)


def mean_iou(ious) -> float:
    """mIoU = 100 · (1/N) Σ_i IoU_i over the N positive queries' IoUs.

    Returns NaN for an empty array (no positives: there is nothing to average).
    """
    ious = np.asarray(ious, dtype=float)
    return float(100.0 * ious.mean()) if ious.size else float("nan")


def recall_at_iou(ious, *, theta: float) -> float:
    """R1@θ = 100 · (1/N) Σ_i 1[IoU_i ≥ θ] over the N positive queries' IoUs.

    One prediction per query (the union of its windows), hence "Recall@1". NaN when N = 0.
    """
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta must be in [0, 1], got {theta}")
    ious = np.asarray(ious, dtype=float)
    # IoUs are rounded to 1e-9 so that 0.5 computed as 0.49999999999 still counts at θ=0.5
    return float(100.0 * (np.round(ious, 9) >= theta).mean()) if ious.size else float("nan")


@dataclass(frozen=True)
class ExistenceAccuracy:
    """Existence accuracy in percent: on positives (said yes), negatives (said no), and all."""

    positive: float
    negative: float
    overall: float
    n_positive: int
    n_negative: int


def existence_accuracy(pred_exists, true_exists, answered=None) -> ExistenceAccuracy:
    """Accuracy of the yes/no stage.

    acc_pos = 100 · #{positive, answered, said yes} / #positive;
    acc_neg = 100 · #{negative, answered, said no} / #negative;
    overall = 100 · #{correct} / #queries. An unanswered query (``answered`` False: unparsed,
    error, missing) is incorrect on either side. NaN where a denominator is 0.
    """
    pred = np.asarray(pred_exists, dtype=bool)
    true = np.asarray(true_exists, dtype=bool)
    ok = np.ones_like(true) if answered is None else np.asarray(answered, dtype=bool)
    if not (pred.shape == true.shape == ok.shape):
        raise ValueError(f"shapes differ: pred {pred.shape}, true {true.shape}, answered {ok.shape}")
    correct = ok & (pred == true)
    n_pos, n_neg = int(true.sum()), int((~true).sum())
    return ExistenceAccuracy(
        positive=_pct(correct[true].sum(), n_pos),
        negative=_pct(correct[~true].sum(), n_neg),
        overall=_pct(correct.sum(), true.size),
        n_positive=n_pos, n_negative=n_neg,
    )


def _pct(num, den) -> float:
    return float(100.0 * num / den) if den else float("nan")


def existence_auroc(scores, true_exists) -> float:
    """Area under the ROC of an existence score: the probability that a random positive query
    scores higher than a random negative one, ties counting one half (Mann-Whitney U / n₊n₋).

    AUROC = (Σ_{i∈pos} rank_i − n₊(n₊+1)/2) / (n₊ · n₋), ranks averaged over ties.
    NaN when there are no positives or no negatives. Scores must be finite.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(true_exists, dtype=bool)
    if s.shape != y.shape:
        raise ValueError(f"shapes differ: scores {s.shape}, true {y.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if y.all() or not y.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score  # the same Mann-Whitney statistic, ties counted one half

    return float(roc_auc_score(y, s))


@dataclass(frozen=True)
class TwoStageF1:
    """The two-stage F1 (percent) with its counts; see the module docstring for the cells."""

    f1: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int
    tn: int


def two_stage_f1(pred_exists, true_exists, ious, *, iou_threshold: float, answered=None) -> TwoStageF1:
    """SpotSound's two-stage F1.

    TP = #{positive, "yes", IoU > θ}; FP = #{negative, "yes"} + #{positive, "yes", IoU ≤ θ};
    FN = #{positive, "no"}; TN = #{negative, "no"}; unanswered queries are FN on a positive and
    FP on a negative. F1 = 100 · 2TP / (2TP + FP + FN), precision = 100 · TP / (TP + FP),
    recall = 100 · TP / (TP + FN) (NaN where a denominator is 0; F1 is 0 when TP+FP+FN > 0 and
    TP = 0, and NaN when every query is a TN).
    """
    pred = np.asarray(pred_exists, dtype=bool)
    true = np.asarray(true_exists, dtype=bool)
    iou_arr = np.asarray(ious, dtype=float)
    ok = np.ones_like(true) if answered is None else np.asarray(answered, dtype=bool)
    if not (pred.shape == true.shape == iou_arr.shape == ok.shape):
        raise ValueError(f"shapes differ: pred {pred.shape}, true {true.shape}, ious {iou_arr.shape}, "
                         f"answered {ok.shape}")
    said_yes = ok & pred
    said_no = ok & ~pred
    good_iou = np.round(iou_arr, 9) > iou_threshold
    tp = int((true & said_yes & good_iou).sum())
    fp = int((true & said_yes & ~good_iou).sum() + (~true & said_yes).sum() + (~true & ~ok).sum())
    fn = int((true & said_no).sum() + (true & ~ok).sum())
    tn = int((~true & said_no).sum())
    return TwoStageF1(
        f1=_pct(2 * tp, 2 * tp + fp + fn), precision=_pct(tp, tp + fp), recall=_pct(tp, tp + fn),
        tp=tp, fp=fp, fn=fn, tn=tn,
    )


@dataclass(frozen=True)
class QueryOutcome:
    """How one query was scored (one row of the per-query table)."""

    id: str
    audio_id: str
    query: str
    negative: bool
    exists: bool            # what the answer said (False for unanswered ones)
    answered: bool          # status not in UNANSWERED_STATUSES
    status: str
    iou: float              # 0 for negatives and unanswered/"no" positives
    existence_correct: bool
    cell: str               # tp / fp / fn / tn of the two-stage F1
    score: float | None = None  # the predictor's existence score, when it gave one


def query_outcome(*, id: str, audio_id: str, query: str, negative: bool, true_windows, exists: bool,
                  pred_windows, status: str, iou_threshold: float, score: float | None = None) -> QueryOutcome:
    """Score one query (see the module docstring for the rules)."""
    answered = status not in UNANSWERED_STATUSES
    said_yes = answered and bool(exists)
    value = iou(pred_windows, true_windows) if (said_yes and not negative) else 0.0
    if negative:
        cell = "tn" if (answered and not exists) else "fp"
        correct = answered and not exists
    else:
        correct = said_yes
        if not said_yes:
            cell = "fn"
        else:
            cell = "tp" if round(value, 9) > iou_threshold else "fp"
    return QueryOutcome(id=id, audio_id=audio_id, query=query, negative=negative, exists=said_yes,
                        answered=answered, status=status, iou=value, existence_correct=correct, cell=cell,
                        score=score)


@dataclass(frozen=True)
class GroundingMetrics:
    """Every grounding number of a run. Percentages 0-100; NaN where undefined (no positives…).

    ``r1`` maps θ (as a string, "0.3") to R1@θ. ``status_counts`` counts each prediction status
    (strict / lenient / repaired / unparsed / error / missing).
    """

    n_queries: int
    n_positive: int
    n_negative: int
    miou: float
    r1: dict[str, float]
    existence: ExistenceAccuracy
    f1: TwoStageF1
    status_counts: dict[str, int] = field(default_factory=dict)
    n_unanswered: int = 0
    # AUROC of the predictors' existence scores, over the n_scored queries that carry one
    # (NaN when none or only one kind of query is scored); never over a silent subset:
    # n_scored says how many of n_queries it covers
    existence_auroc: float = float("nan")
    n_scored: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        return _nan_to_none(d)


def _nan_to_none(x):
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, float) and x != x:
        return None
    return x


def grounding_metrics(outcomes: Sequence[QueryOutcome], *, r1_thresholds: Iterable[float],
                      f1_iou_threshold: float) -> GroundingMetrics:
    """Aggregate per-query outcomes into :class:`GroundingMetrics`.

    mIoU and R1@θ over positive queries only (see module docstring); existence accuracy and the
    two-stage F1 over all queries; every status counted; existence AUROC over the queries whose
    prediction carries a score (their number is ``n_scored``).
    """
    n = len(outcomes)
    negative = np.fromiter((o.negative for o in outcomes), bool, n)
    exists = np.fromiter((o.exists for o in outcomes), bool, n)
    answered = np.fromiter((o.answered for o in outcomes), bool, n)
    ious = np.fromiter((o.iou for o in outcomes), float, n)
    pos_ious = ious[~negative]
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    scored = [o for o in outcomes if o.score is not None]
    return GroundingMetrics(
        n_queries=n, n_positive=int((~negative).sum()), n_negative=int(negative.sum()),
        miou=mean_iou(pos_ious),
        r1={f"{t:g}": recall_at_iou(pos_ious, theta=t) for t in r1_thresholds},
        existence=existence_accuracy(exists, ~negative, answered),
        f1=two_stage_f1(exists, ~negative, ious, iou_threshold=f1_iou_threshold, answered=answered),
        status_counts=dict(sorted(counts.items())),
        n_unanswered=int((~answered).sum()),
        existence_auroc=existence_auroc([o.score for o in scored], [not o.negative for o in scored]),
        n_scored=len(scored),
    )
