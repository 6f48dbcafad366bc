"""Sound event detection metrics from frame scores, through ``sed_scores_eval``.

Inputs follow sed_scores_eval (Ebbers et al., ICASSP 2022): per audio id a score DataFrame with
columns ``onset``, ``offset`` (frame boundaries in seconds) and one score column per class (for
earmark: per phrase); ground truth per audio id as ``(onset, offset, class)`` tuples; durations
per audio id in seconds. Every class must be a column of every audio's scores.

* **PSDS** (Bilen et al., ICASSP 2020), the normalised area under the PSD-ROC up to e_max
  effective false positives per hour. Four settings (:data:`PSDS1`, :data:`PSDS2`,
  :data:`PSDS_GROUNDING`, :data:`PSDS1_AST0`):

  ===========  =====  =====  =====  =====  =====  =====
  setting      DTC    GTC    CTTC   α_ct   α_st   e_max
  ===========  =====  =====  =====  =====  =====  =====
  psds1        0.7    0.7    –      0      1      100
  psds2        0.1    0.1    0.3    0.5    1      100
  grounding    0.5    0.5    –      0      0      100
  psds1_ast0   0.7    0.7    –      0      0      100
  ===========  =====  =====  =====  =====  =====  =====

  PSDS1/PSDS2 are the DCASE settings (FineLAP App. E, FLAM C.7). The grounding setting takes
  DTC=GTC=0.5 (DESIGN.md); α_st = 0 there because in open-vocabulary grounding every phrase is
  its own "class" with few events, so the across-class spread measures phrase sampling, not
  instability (FineLAP drops it for AudioSet-Strong for the same reason). ``psds1_ast0`` is
  PSDS1 without that penalty: when a few classes are never detected, μ_TPR − σ_TPR stays below 0
  and PSDS1 reads 0 whatever the other classes do; the mean over classes still moves.
* **AUROC**: segment-based ROC AUC per class (segments of ``auroc_segment_length`` s; FLAM
  uses 0.3125 s, the HTSAT frame), averaged over classes.
* **mPAUC**: segment-based partial AUC up to FPR 0.1 on 1 s segments, normalised by 0.1
  (sed_scores_eval's ``max_fpr``), averaged over classes (FLAM C.7, DCASE 2023 task 4B).
* **Collar F1**: collar-based event F1 at one threshold (DCASE collars: 200 ms on onsets,
  max(200 ms, 20 % of the event) on offsets), macro and micro averaged.

With a single class, PSDS2's cross-trigger term (a mean over the *other* classes) is 0.

A class with no ground-truth event anywhere has no true positive rate; sed_scores_eval refuses
it, so such classes are left out of every metric and listed in
:attr:`SedMetrics.classes_without_events` (never silently). An AUROC class whose segments are
all positive (no FPR) is likewise listed in ``auroc_undefined``.

sed_scores_eval 0.0.4 hands read-only pandas-3 buffers to its Cython code ("buffer source array
is read-only"); :func:`as_score_frame` returns frames whose ``to_numpy`` copies, which fixes it
without touching the library's computation.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PsdsSetting", "PSDS1", "PSDS2", "PSDS_GROUNDING", "PSDS1_AST0", "SedEvalConfig", "SedMetrics", "PsdsResult",
           "as_score_frame", "check_sed_inputs", "psds", "segment_auroc", "collar_f1", "evaluate_sed",
           "read_scores", "ground_truth_from_manifest", "plot_psd_roc"]


class _ScoreFrame(pd.DataFrame):
    """A score DataFrame whose arrays are writable copies (see module docstring)."""

    @property
    def _constructor(self):
        return _ScoreFrame

    def to_numpy(self, *args, **kwargs):
        return np.array(super().to_numpy(*args, **kwargs), copy=True)


def as_score_frame(scores, what: str = "scores") -> pd.DataFrame:
    """A validated sed_scores_eval score DataFrame from a DataFrame or a
    ``(timestamps, class_names, matrix)`` triple (timestamps: T+1 frame boundaries; matrix: T×K).
    Raises ValueError naming ``what`` for a bad shape, NaN/inf scores or non-increasing times."""
    from sed_scores_eval.base_modules.scores import create_score_dataframe, validate_score_dataframe

    if isinstance(scores, pd.DataFrame):
        frame = scores
    elif isinstance(scores, (tuple, list)) and len(scores) == 3:
        timestamps, classes, matrix = scores
        try:
            frame = create_score_dataframe(np.asarray(matrix, dtype=float), np.asarray(timestamps, dtype=float),
                                           [str(c) for c in classes])
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    else:
        raise ValueError(f"{what}: expected a score DataFrame or (timestamps, class_names, matrix), "
                         f"got {type(scores).__name__}")
    if len(frame) == 0:
        raise ValueError(f"{what}: no frames")
    try:
        validate_score_dataframe(frame)
    except (ValueError, AssertionError) as exc:
        raise ValueError(f"{what}: {exc}") from None
    try:
        values = np.asarray(frame.to_numpy(dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"{what}: scores are not all numbers") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{what}: scores or times contain NaN or infinity")
    if np.any(np.diff(values[:, 0]) <= 0):
        raise ValueError(f"{what}: frame onsets are not strictly increasing")
    return _ScoreFrame(frame)


@dataclass(frozen=True)
class PsdsSetting:
    """One PSDS operating definition (see the table in the module docstring)."""

    name: str
    dtc_threshold: float
    gtc_threshold: float
    cttc_threshold: float | None
    alpha_ct: float
    alpha_st: float
    max_efpr: float = 100.0

    def __post_init__(self):
        for f in ("dtc_threshold", "gtc_threshold"):
            v = getattr(self, f)
            if not 0.0 < v <= 1.0:
                raise ValueError(f"{f}: {v} is not in (0, 1]")
        if (self.alpha_ct == 0) != (self.cttc_threshold is None):
            raise ValueError("cttc_threshold: must be given exactly when alpha_ct is not 0")
        if self.max_efpr <= 0:
            raise ValueError(f"max_efpr: {self.max_efpr} must be positive")


PSDS1 = PsdsSetting("psds1", 0.7, 0.7, None, 0.0, 1.0, 100.0)
PSDS2 = PsdsSetting("psds2", 0.1, 0.1, 0.3, 0.5, 1.0, 100.0)
PSDS_GROUNDING = PsdsSetting("grounding", 0.5, 0.5, None, 0.0, 0.0, 100.0)
PSDS1_AST0 = PsdsSetting("psds1_ast0", 0.7, 0.7, None, 0.0, 0.0, 100.0)


@dataclass(frozen=True)
class PsdsResult:
    """PSDS in [0, 1], per class, and the PSD-ROC (effective TPR over eFPR per hour)."""

    setting: str
    psds: float
    per_class: dict[str, float]
    etpr: np.ndarray = field(repr=False)
    efpr: np.ndarray = field(repr=False)


def check_sed_inputs(scores: dict, ground_truth: dict, durations: dict) -> None:
    """The three dicts must hold the same audio ids (ValueError listing missing/additional ids)."""
    ids = set(scores)
    for name, d in (("ground_truth", ground_truth), ("durations", durations)):
        if set(d) != ids:
            raise ValueError(f"{name} audio ids do not match the scores' audio ids. "
                             f"Missing ids: {sorted(ids - set(d))[:10]}. Additional ids: {sorted(set(d) - ids)[:10]}.")


def _prepare(scores: dict, ground_truth: dict, durations: dict, *, unscored_events: str = "error"):
    """Validate, merge touching same-class events, drop classes without events.

    Returns (frames, ground truth, durations, kept classes, dropped classes, dropped events)."""
    from data_recipes.formats import Event, merge_events

    if not scores:
        raise ValueError("scores: no audio")
    check_sed_inputs(scores, ground_truth, durations)
    frames = {k: as_score_frame(v, f"scores of {k!r}") for k, v in scores.items()}
    first = next(iter(frames))
    classes = list(frames[first].columns[2:])
    for k, f in frames.items():
        if list(f.columns[2:]) != classes:
            raise ValueError(f"scores of {k!r}: classes {list(f.columns[2:])[:5]}... differ from those of {first!r} "
                             f"{classes[:5]}...; every audio must be scored for the same classes")
    gt: dict[str, list] = {}
    n_unscored = 0
    for k in frames:
        d = float(durations[k])
        if not (math.isfinite(d) and d > 0):
            raise ValueError(f"durations[{k!r}] = {durations[k]!r} is not a positive number")
        events = []
        for ev in ground_truth[k]:
            try:
                s, e, c = float(ev[0]), float(ev[1]), str(ev[2])
            except (TypeError, ValueError, IndexError):
                raise ValueError(f"ground_truth[{k!r}]: {ev!r} is not (onset, offset, class)") from None
            if not (math.isfinite(s) and math.isfinite(e) and e > s):
                raise ValueError(f"ground_truth[{k!r}]: event {ev!r} has no positive length")
            if c not in classes:
                if unscored_events == "drop":
                    n_unscored += 1
                    continue
                raise ValueError(f"ground_truth[{k!r}]: class {c!r} is not among the scored classes "
                                 f"(pass unscored_events='drop' to ignore such events)")
            events.append(Event(c, s, e))
        # sed_scores_eval wants same-class events strictly apart; touching ones are one event
        gt[k] = [(ev.start, ev.end, ev.query) for ev in merge_events(events)]
    with_events = {c for evs in gt.values() for _, _, c in evs}
    kept = [c for c in classes if c in with_events]
    dropped = [c for c in classes if c not in with_events]
    if not kept:
        raise ValueError("ground_truth: no scored class has any event; nothing to evaluate")
    if dropped:
        frames = {k: _ScoreFrame(f[["onset", "offset", *kept]]) for k, f in frames.items()}
    return frames, gt, {k: float(durations[k]) for k in frames}, kept, dropped, n_unscored


def psds(scores: dict, ground_truth: dict, durations: dict, *, setting: PsdsSetting) -> PsdsResult:
    """PSDS = (1 / e_max) ∫₀^e_max [μ_TPR(e) − α_st · σ_TPR(e)] de, with per-class
    eTPR over eFPR = FPR + α_ct · mean cross-trigger rate (per hour), computed exactly by
    ``sed_scores_eval.intersection_based.psds``. Inputs must already be validated (see
    :func:`evaluate_sed`), every class having at least one event."""
    from sed_scores_eval import intersection_based

    n_classes = len(next(iter(scores.values())).columns) - 2
    if n_classes == 1 and setting.alpha_ct != 0:
        # eFPR = FPR + α_ct · mean cross-trigger rate over the *other* classes; with one class
        # there are none, the term is 0. (sed_scores_eval 0.0.4 crashes on the empty set.)
        setting = dataclasses.replace(setting, cttc_threshold=None, alpha_ct=0.0)
    value, per_class, (etpr, efpr), _ = intersection_based.psds(
        scores, ground_truth, durations,
        dtc_threshold=setting.dtc_threshold, gtc_threshold=setting.gtc_threshold,
        cttc_threshold=setting.cttc_threshold, alpha_ct=setting.alpha_ct, alpha_st=setting.alpha_st,
        unit_of_time="hour", max_efpr=setting.max_efpr,
    )
    return PsdsResult(setting.name, float(value), {c: float(v) for c, v in per_class.items()},
                      np.asarray(etpr, dtype=float), np.asarray(efpr, dtype=float))


def segment_auroc(scores: dict, ground_truth: dict, durations: dict, *, segment_length: float,
                  max_fpr: float | None) -> tuple[float, dict[str, float], list[str]]:
    """Segment-based (partial) AUROC: each class's scores are max-pooled over segments of
    ``segment_length`` s, a segment is positive when a true event overlaps it; AUC of the ROC up
    to ``max_fpr`` divided by ``max_fpr`` (whole AUC when None), per class; the mean is over the
    classes where it is defined. Returns (mean, per class, classes where it is undefined)."""
    from sed_scores_eval import segment_based

    per_class, _ = segment_based.auroc(scores, ground_truth, durations, segment_length=segment_length,
                                       max_fpr=max_fpr)
    per_class = {c: float(v) for c, v in per_class.items() if c != "mean"}
    defined = {c: v for c, v in per_class.items() if math.isfinite(v)}
    undefined = sorted(set(per_class) - set(defined))
    mean = float(np.mean(list(defined.values()))) if defined else float("nan")
    return mean, per_class, undefined


def collar_f1(scores: dict, ground_truth: dict, *, threshold: float, onset_collar: float, offset_collar: float,
              offset_collar_rate: float) -> dict:
    """Collar-based event F1 at ``threshold``: a detection matches a true event of its class when
    |onset error| ≤ onset_collar and |offset error| ≤ max(offset_collar, offset_collar_rate ·
    event length). F1 = 2PR/(P+R) per class, macro average (mean over classes) and micro average
    (pooled counts). Returns {"macro": f, "micro": f, "per_class": {...}, "precision": ...}."""
    from sed_scores_eval import collar_based

    f, p, r, _ = collar_based.fscore(scores, ground_truth, threshold, onset_collar=onset_collar,
                                     offset_collar=offset_collar, offset_collar_rate=offset_collar_rate)
    per_class = {c: float(v) for c, v in f.items() if c not in ("macro_average", "micro_average")}
    return {"macro": float(f["macro_average"]), "micro": float(f["micro_average"]),
            "precision_micro": float(p["micro_average"]), "recall_micro": float(r["micro_average"]),
            "per_class": per_class}


@dataclass
class SedEvalConfig:
    """Which SED metrics and settings :func:`evaluate_sed` computes (JSON-serialisable).

    ``auroc_segment_length`` None means the scores' own frame length (the first audio's first
    frame). ``unscored_events``: "error" (default) refuses ground-truth events of a class the
    scores do not have; "drop" ignores them (their count is reported).
    """

    psds_settings: tuple[str, ...] = ("psds1", "psds2", "grounding")
    auroc_segment_length: float | None = None
    mpauc_segment_length: float = 1.0
    mpauc_max_fpr: float = 0.1
    collar_threshold: float = 0.5
    onset_collar: float = 0.2
    offset_collar: float = 0.2
    offset_collar_rate: float = 0.2
    unscored_events: str = "error"

    def __post_init__(self):
        self.psds_settings = tuple(self.psds_settings)
        bad = [s for s in self.psds_settings if s not in _SETTINGS]
        if bad:
            raise ValueError(f"psds_settings: unknown {bad}; choose from {sorted(_SETTINGS)}")
        if self.auroc_segment_length is not None and not self.auroc_segment_length > 0:
            raise ValueError(f"auroc_segment_length: {self.auroc_segment_length} must be positive")
        if not self.mpauc_segment_length > 0:
            raise ValueError(f"mpauc_segment_length: {self.mpauc_segment_length} must be positive")
        if not 0 < self.mpauc_max_fpr <= 1:
            raise ValueError(f"mpauc_max_fpr: {self.mpauc_max_fpr} is not in (0, 1]")
        for f in ("onset_collar", "offset_collar", "offset_collar_rate"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f}: must not be negative")
        if self.unscored_events not in ("error", "drop"):
            raise ValueError(f"unscored_events: {self.unscored_events!r} is not 'error' or 'drop'")


_SETTINGS = {s.name: s for s in (PSDS1, PSDS2, PSDS_GROUNDING, PSDS1_AST0)}


@dataclass
class SedMetrics:
    """Every SED number of :func:`evaluate_sed` (PSDS, AUROC, mPAUC, F1 in [0, 1])."""

    psds: dict[str, float]                       # setting name -> PSDS
    psds_per_class: dict[str, dict[str, float]]  # setting name -> class -> PSDS
    auroc: float
    auroc_per_class: dict[str, float]
    auroc_segment_length: float
    mpauc: float
    mpauc_per_class: dict[str, float]
    collar_f1: dict
    classes: list[str]
    classes_without_events: list[str]
    auroc_undefined: list[str]
    n_audio: int
    n_events: int
    n_unscored_events: int
    config: SedEvalConfig
    curves: dict[str, PsdsResult] = field(default_factory=dict, repr=False)

    @property
    def psds1(self) -> float:
        return self.psds.get("psds1", float("nan"))

    @property
    def psds2(self) -> float:
        return self.psds.get("psds2", float("nan"))

    @property
    def psds_grounding(self) -> float:
        return self.psds.get("grounding", float("nan"))

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "curves"}
        return _clean(d)


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def evaluate_sed(scores: dict, ground_truth: dict, durations: dict, *,
                 config: SedEvalConfig | None = None) -> SedMetrics:
    """All SED metrics of frame scores against ground truth.

    Args:
        scores: audio id → sed_scores_eval score DataFrame (``onset``, ``offset``, one column
            per class) or ``(timestamps, class_names, matrix)`` with T+1 timestamps and a
            (T, K) matrix. Every audio must have the same classes. Scores are used as given:
            median-filter them first if wanted (:func:`eval.postprocess.median_filter`).
        ground_truth: audio id → list of ``(onset, offset, class)``; empty list for none.
        durations: audio id → duration in seconds.
        config: which settings; defaults compute PSDS1, PSDS2 and the grounding PSDS, AUROC on
            the scores' frames, mPAUC (1 s, FPR ≤ 0.1) and collar F1 at 0.5.

    Raises:
        ValueError: audio ids differ between the three dicts (missing/additional listed), scores
            are malformed or non-finite, classes differ between audios, an event's class was not
            scored (unless ``unscored_events="drop"``), or no class has any event.
    """
    config = config or SedEvalConfig()
    frames, gt, durs, kept, dropped, n_unscored = _prepare(scores, ground_truth, durations,
                                                          unscored_events=config.unscored_events)
    results = {name: psds(frames, gt, durs, setting=_SETTINGS[name]) for name in config.psds_settings}
    seg = config.auroc_segment_length
    if seg is None:
        f0 = next(iter(frames.values()))
        seg = float(f0["offset"].iloc[0] - f0["onset"].iloc[0])
    auroc, auroc_pc, undefined = segment_auroc(frames, gt, durs, segment_length=seg, max_fpr=None)
    mpauc, mpauc_pc, undefined_p = segment_auroc(frames, gt, durs, segment_length=config.mpauc_segment_length,
                                                 max_fpr=config.mpauc_max_fpr)
    f1 = collar_f1(frames, gt, threshold=config.collar_threshold, onset_collar=config.onset_collar,
                   offset_collar=config.offset_collar, offset_collar_rate=config.offset_collar_rate)
    return SedMetrics(
        psds={k: r.psds for k, r in results.items()},
        psds_per_class={k: r.per_class for k, r in results.items()},
        auroc=auroc, auroc_per_class=auroc_pc, auroc_segment_length=seg,
        mpauc=mpauc, mpauc_per_class=mpauc_pc, collar_f1=f1,
        classes=kept, classes_without_events=dropped, auroc_undefined=sorted(set(undefined) | set(undefined_p)),
        n_audio=len(frames), n_events=sum(len(v) for v in gt.values()), n_unscored_events=n_unscored,
        config=config, curves=results,
    )


# --------------------------------------------------------------------------------------------
# files

def read_scores(path: str | Path) -> dict[str, pd.DataFrame]:
    """Scores in sed_scores_eval's own format: a directory of ``<audio_id>.tsv`` files (or one
    such file), each with a header ``onset\\toffset\\t<class>...`` and one row per frame."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".tsv")
        if not files:
            raise ValueError(f"{path}: no .tsv score files in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: no such file or directory")
    out = {}
    for f in files:
        try:
            frame = pd.read_csv(f, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"{f}: not a score TSV ({exc})") from None
        out[f.stem] = as_score_frame(frame, str(f))
    return out


def evaluate_sed_files(scores_path: str | Path, manifest_path: str | Path, *, median_filter: int,
                       config: SedEvalConfig | None = None, audio_ids=None) -> tuple[SedMetrics, float | None]:
    """The SED metrics of score files (:func:`read_scores`) against a manifest's events, after a
    ``median_filter`` of that many frames (1: none) — the one path both ``earmark eval sed`` and
    ``earmark contrastive eval`` take, so the same files give the same numbers. ``audio_ids``:
    only these files. Returns (metrics, the frame length in seconds, for reporting the filter)."""
    from .postprocess import median_filter as _median_filter

    scores = read_scores(scores_path)
    if audio_ids is not None:
        keep = set(audio_ids)
        scores = {k: v for k, v in scores.items() if k in keep}
    scores = _median_filter(scores, filter_length=median_filter)
    gt, durations = ground_truth_from_manifest(manifest_path, list(scores))
    first = next(iter(scores.values()), None)
    frame_s = float(first["offset"].iloc[0] - first["onset"].iloc[0]) if first is not None and len(first) else None
    return evaluate_sed(scores, gt, durations, config=config), frame_s


def ground_truth_from_manifest(manifest_path: str | Path, audio_ids=None):
    """(ground truth, durations) for the manifest records in ``audio_ids`` (all when None):
    each event becomes ``(start, end, query)`` — the query text is the class."""
    from data_recipes.formats import ManifestRecord, read_jsonl

    records = {r.id: r for r in read_jsonl(manifest_path, ManifestRecord)}
    ids = list(records) if audio_ids is None else list(audio_ids)
    missing = sorted(set(ids) - set(records))
    if missing:
        raise ValueError(f"{manifest_path}: scored audio id(s) not in the manifest: {missing[:10]}")
    gt = {i: [(e.start, e.end, e.query) for e in records[i].events] for i in ids}
    return gt, {i: records[i].duration for i in ids}


def plot_psd_roc(metrics: SedMetrics, path: str | Path) -> Path:
    """One PNG with the PSD-ROC of every computed PSDS setting (eTPR over eFPR per hour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in metrics.curves.items():
        order = np.argsort(r.efpr, kind="stable")
        x, y = r.efpr[order], r.etpr[order]
        keep = x <= _SETTINGS[name].max_efpr
        ax.step(np.append(x[keep], _SETTINGS[name].max_efpr), np.append(y[keep], y[keep][-1] if keep.any() else 0),
                where="post", label=f"{name}: PSDS {r.psds:.3f}")
    ax.set_xlabel("effective false positives per hour")
    ax.set_ylabel("effective true positive rate")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"PSD-ROC ({metrics.n_audio} files, {len(metrics.classes)} classes)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
