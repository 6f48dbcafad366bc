"""Post-processing of frame scores, as explicit steps a caller chooses: median filter, threshold.

Metrics in :mod:`eval.sed_metrics` never filter on their own, so a reported number always says
which post-processing it had (the CLI records ``median_filter`` in its output).

Scores are either a ``(T, K)`` array (frames × classes) or a sed_scores_eval score DataFrame
(columns ``onset``, ``offset``, then one column per class), or a dict of those by audio id.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["median_filter", "detect_events", "DEFAULT_MEDIAN_FILTER", "check_filter_length", "describe_median_filter"]

# the filter every SED number of earmark gets unless told otherwise (`eval sed`, `contrastive eval`)
DEFAULT_MEDIAN_FILTER = 3
# longer than any event a frame-level metric can still see (40 s at 25 fps): a typo, not a choice
MAX_MEDIAN_FILTER = 1001


def check_filter_length(n: int, option: str = "--median-filter") -> int:
    """``n`` as a command-line median filter length, or one error naming the option."""
    if not (1 <= n <= MAX_MEDIAN_FILTER and n % 2 == 1):
        raise ValueError(f"{option} must be an odd number of frames from 1 to {MAX_MEDIAN_FILTER}, got {n}")
    return n


def describe_median_filter(filter_length: int, frame_seconds: float | None = None) -> str:
    """How a reported number was post-processed, for the line printed beside it."""
    if filter_length == 1:
        return "no median filter (raw frame scores)"
    span = f", {filter_length * frame_seconds:.2f} s" if frame_seconds else ""
    return f"median filter of {filter_length} frames{span} on the frame scores"


def median_filter(scores, *, filter_length: int):
    """Median-filter every class's scores along time over ``filter_length`` frames (odd, ≥ 1).

    y[t, k] = median(x[t - h .. t + h, k]) with h = (filter_length - 1) / 2; the edges repeat the
    first/last frame (``mode="nearest"``). FLAM (App. C.7) uses 3 frames before SED metrics.
    ``filter_length == 1`` returns an unchanged copy. Returns the same kind it was given.
    """
    if isinstance(filter_length, bool) or not isinstance(filter_length, (int, np.integer)):
        raise ValueError(f"filter_length must be an odd integer >= 1, got {filter_length!r}")
    if filter_length < 1 or filter_length % 2 == 0:
        raise ValueError(f"filter_length must be an odd integer >= 1, got {filter_length}")
    if isinstance(scores, dict):
        return {k: median_filter(v, filter_length=filter_length) for k, v in scores.items()}
    if isinstance(scores, pd.DataFrame):
        classes = list(scores.columns[2:])
        out = scores.copy()
        out[classes] = median_filter(scores[classes].to_numpy(dtype=float), filter_length=filter_length)
        return out
    x = np.array(scores, dtype=float, copy=True)
    if x.ndim != 2:
        raise ValueError(f"scores must be (frames, classes), got shape {x.shape}")
    if filter_length == 1 or x.shape[0] == 0:
        return x
    from scipy.ndimage import median_filter as _mf

    return _mf(x, size=(filter_length, 1), mode="nearest")


def detect_events(scores: pd.DataFrame, *, threshold) -> list[tuple[float, float, str]]:
    """Threshold a score DataFrame into events ``(onset, offset, class)``, time-ordered.

    An event is a maximal run of frames whose score is strictly above ``threshold`` (a float,
    or a dict class → float); onset/offset are the run's first frame onset and last frame
    offset (sed_scores_eval's ``scores_to_event_list``).
    """
    from sed_scores_eval.base_modules.detection import scores_to_event_list

    from .sed_metrics import as_score_frame

    frame = as_score_frame(scores, "scores")
    classes = list(frame.columns[2:])
    if isinstance(threshold, dict):
        missing = [c for c in classes if c not in threshold]
        if missing:
            raise ValueError(f"threshold has no value for class(es) {missing}")
        thr = np.array([float(threshold[c]) for c in classes])
    else:
        thr = float(threshold)
    events = scores_to_event_list(frame, thresholds=thr)
    return sorted((float(s), float(e), str(c)) for s, e, c in events)
