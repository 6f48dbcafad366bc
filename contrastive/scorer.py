"""Inference: (audio of any length, phrases) -> calibrated score per frame, events, candidates.

    scorer = Scorer.from_pretrained()            # the embedded default shipped in the package
    emb = scorer.embed("long.flac")              # audio encoded ONCE (windows stitched)
    scores = scorer.frame_scores(emb, ["dog barking", "rain"])      # FrameScores [N, T]
    scorer.events(emb, ["dog barking"])          # median filter + threshold -> intervals
    scorer.candidates(emb, "dog barking", k=5)   # top-k windows worth a closer look
    scorer.exists(emb, "dog barking")            # clip-level existence probability

Long audio streams through ``data_recipes.audio.stream_windows`` in ``window``-second windows
with ``hop`` overlap; frame embeddings of overlapping windows are averaged with weights that fall
off towards each window's edges (where a window has the least context) and re-normalised.
Every public method accepts a path, a 16 kHz mono numpy array, or an :class:`AudioEmbedding`,
and an embedding of a path is cached, so asking 20 phrases about one file encodes it once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(__file__).with_name("default")
# scorers the package ships, by name: what ``--model NAME`` / ``--scorer NAME`` accept besides a path
NAMED_SCORERS = {"default": DEFAULT_DIR, "zeroshot": Path(__file__).with_name("zeroshot"),
                 "cnn": Path(__file__).with_name("cnn")}


def resolve_scorer_dir(path: str | Path | None, *, revision: str | None = None) -> Path:
    """None or a shipped scorer's name -> its package directory; an existing path -> itself; a
    Hugging Face Hub id ("org/name") -> its snapshot (see :func:`hub_snapshot`); anything else
    is returned as a path, for the caller to say it does not exist."""
    if path is None:
        return DEFAULT_DIR
    p = Path(path)
    if p.exists():
        return p
    if str(path) in NAMED_SCORERS:
        return NAMED_SCORERS[str(path)]
    if looks_like_hub_id(path):
        return hub_snapshot(str(path), what="scorer", revision=revision)
    return p


def looks_like_hub_id(name) -> bool:
    """"org/name" or "name" as the Hub spells repositories (not "./x", "/x", "~/x" or "a/b/c")."""
    if not isinstance(name, str) or name.startswith((".", "/", "~")) or name.count("/") > 1:
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def hub_snapshot(repo_id: str, *, what: str, revision: str | None = None) -> Path:
    """The local directory of a Hub model repository, through ``huggingface_hub.snapshot_download``:
    from its cache (``HF_HUB_CACHE``) when it is there and ``HF_HUB_OFFLINE=1`` (or when the Hub
    cannot be reached), else downloaded into it."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileNotFoundError(f"{what} {repo_id!r}: no such directory, shipped name, nor Hugging Face "
                                f"Hub model (in its cache or online: {reason})") from None


@dataclass
class AudioEmbedding:
    dense: "object"        # torch.Tensor [T, D], L2-normalised frame embeddings
    globals_: "object"     # torch.Tensor [W, D], one global embedding per window
    fps: float
    duration: float
    name: str = "audio"
    # phrase-independent work a model does once per recording (``model.prepare``), filled lazily
    prepared: dict | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        return int(self.dense.shape[0])


@dataclass
class FrameScores:
    phrases: list
    scores: np.ndarray      # [N, T] probabilities in [0, 1]
    fps: float
    duration: float

    def times(self) -> np.ndarray:
        """Centre time of every frame (seconds)."""
        return (np.arange(self.scores.shape[1]) + 0.5) / self.fps


@dataclass
class DetectedEvent:
    phrase: str
    start: float
    end: float
    score: float

    def to_dict(self) -> dict:
        return {"phrase": self.phrase, "start": round(self.start, 2), "end": round(self.end, 2),
                "score": round(float(self.score), 4)}


def _median(x: np.ndarray, size: int) -> np.ndarray:
    if size <= 1:
        return x
    from scipy.ndimage import median_filter

    return median_filter(x, size=(1, size) if x.ndim == 2 else size, mode="nearest")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(a, b)] of the True runs of a 1-D bool array (b exclusive)."""
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def peak_windows(candidates, peak_ratio: float = 0.5) -> list[tuple[float, float, float]]:
    """How the scorer answers "when?": of its candidate windows ``(start, end, peak)``, those whose
    peak is at least ``peak_ratio`` x the best one's, touching or overlapping ones merged (keeping
    the higher peak). The pipeline's ``scorer`` mode answers with these, and
    ``evaluate.fit_decision_thresholds`` chooses ``candidate_rel`` by them."""
    best = max((c for _, _, c in candidates), default=0.0)
    out: list[list[float]] = []
    for a, b, c in sorted(w for w in candidates if w[2] >= peak_ratio * best):
        if out and a <= out[-1][1]:
            out[-1][1], out[-1][2] = max(out[-1][1], b), max(out[-1][2], c)
        else:
            out.append([a, b, c])
    return [tuple(w) for w in out]


def _persist_text_features(model) -> None:
    """Inference asks the same phrases again and again (and a YAMNet scorer its 521 class names
    every time): keep the frozen text tower's features on disk, so a later process loads the text
    model only for a phrase it has not seen (``text_encoders.PhraseStore``)."""
    from .text_encoders import TextEncoder

    for m in model.modules() if hasattr(model, "modules") else ():
        if isinstance(m, TextEncoder):
            m.persist()


class Scorer:
    """Wraps a :class:`ScorerModel` for inference on files of any length."""

    def __init__(self, model, *, window: float = 10.0, hop: float = 5.0, median_seconds: float = 0.28,
                 threshold: float = 0.5, batch_windows: int = 8, num_threads: int | None = None,
                 exists_threshold: float = 0.5, absent_below: float = 0.1, candidate_rel: float = 0.5,
                 exists_median_seconds: float | None = None):
        if not 0 < hop <= window:
            raise ValueError(f"hop={hop}: must be in (0, window={window}]")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold={threshold}: must be in (0, 1)")
        self.model = model.eval()
        _persist_text_features(model)
        self.window, self.hop = float(window), float(hop)
        # events and candidates want a long filter (it keeps an event in one piece), existence a
        # short one (a long filter flattens the peak of a short event); None: one filter for all
        if exists_median_seconds is None:
            exists_median_seconds = median_seconds
        for name, v in (("median_seconds", median_seconds), ("exists_median_seconds", exists_median_seconds)):
            if not 0.0 <= v < float("inf"):
                raise ValueError(f"{name}={v}: must be a finite number >= 0")
        self.median_seconds, self.threshold = float(median_seconds), float(threshold)
        self.exists_median_seconds = float(exists_median_seconds)
        for name, v in (("exists_threshold", exists_threshold), ("absent_below", absent_below)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}={v}: must be in [0, 1]")
        # existence decisions on ``exists``: say "yes" at or above exists_threshold; as the
        # grounder's verifier, veto below absent_below (chosen on held-out queries, see
        # evaluate.fit_decision_thresholds; stored under inference.decision)
        self.exists_threshold, self.absent_below = float(exists_threshold), float(absent_below)
        if not 0.0 < candidate_rel <= 1.0:
            raise ValueError(f"candidate_rel={candidate_rel}: must be in (0, 1]")
        # how far a candidate window grows around its peak (score >= candidate_rel x peak); chosen on
        # held-out queries with the decisions (inference.decision), 0.5 for older checkpoints
        self.candidate_rel = float(candidate_rel)
        self.batch_windows = batch_windows
        self.num_threads = num_threads
        self.sr = model.config.audio.sample_rate
        self.fps = model.frames_per_second
        self._cache: dict = {}
        # optional Platt scaling of the existence score, fitted on validation data (see evaluate.py)
        self.existence_calibration = getattr(model, "existence_calibration", None)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, revision: str | None = None, **kw) -> "Scorer":
        """Load a checkpoint directory (``earmark contrastive train`` output or
        :meth:`save_pretrained`); ``None`` loads the embedded default of the package, a name of
        ``NAMED_SCORERS`` ("zeroshot", "cnn") another scorer the package ships, and a Hugging Face
        Hub id ("org/name", at ``revision``) the snapshot of that repository (offline from the hub
        cache with ``HF_HUB_OFFLINE=1``). ``kw`` override the checkpoint's inference settings."""
        import json

        from .model import ScorerModel

        path = resolve_scorer_dir(path, revision=revision)
        model = ScorerModel.from_pretrained(path)
        meta = json.loads((path / "config.json").read_text())
        inf = dict(meta.get("inference") or {})
        model.existence_calibration = inf.pop("existence_calibration", None)
        decision = inf.pop("decision", None) or {}
        inf.update({k: decision[k] for k in ("exists_threshold", "absent_below", "candidate_rel") if k in decision})
        inf.update(kw)
        scorer = cls(model, **inf)
        scorer._checkpoint_meta = meta
        return scorer

    def save_pretrained(self, path: str | Path) -> Path:
        """Write this scorer so that :meth:`from_pretrained` rebuilds it: weights (none for a
        zero-shot scorer), model config, and the inference settings in use (windows, filters,
        thresholds, existence decision and calibration) in ``config.json``, beside whatever else
        the checkpoint it was loaded from recorded (how it was trained, threshold statistics).
        The directory is what ``huggingface_hub.upload_folder`` publishes."""
        meta = {k: v for k, v in getattr(self, "_checkpoint_meta", {}).items()
                if k not in ("library", "format_version", "model", "frames_per_second")}
        meta["inference"] = self._inference_settings(meta.get("inference") or {})
        self.model.save_pretrained(Path(path), extra=meta)
        return Path(path)

    def _inference_settings(self, stored: dict) -> dict:
        inf = dict(stored) | {"window": self.window, "hop": self.hop, "median_seconds": self.median_seconds,
                              "threshold": self.threshold, "exists_median_seconds": self.exists_median_seconds}
        inf["decision"] = dict(stored.get("decision") or {}) | {
            "exists_threshold": self.exists_threshold, "absent_below": self.absent_below,
            "candidate_rel": self.candidate_rel}
        if self.existence_calibration:
            inf["existence_calibration"] = self.existence_calibration
        else:
            inf.pop("existence_calibration", None)
        return inf

    # ------------------------------------------------------------------ encoding
    def embed(self, audio, *, name: str | None = None, progress: bool = False,
              sample_rate: int | None = None) -> AudioEmbedding:
        """Encode audio once: a path (any length, streamed), or samples — at ``sample_rate`` when
        given (any rate and (samples,) / (channels, samples) / (samples, channels) layout), else
        mono at the model's rate (``self.sr``)."""
        if isinstance(audio, AudioEmbedding):
            return audio
        if isinstance(audio, (str, Path)):
            p = Path(audio)
            from data_recipes.audio import _check_path

            _check_path(p)
            st = p.stat()
            key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
            if key in self._cache:
                return self._cache[key]
            from data_recipes.audio import stream_windows

            emb = self._embed_windows(stream_windows(p, self.sr, self.window, self.hop), name or str(p), progress)
            self._cache = {key: emb}      # keep one file: hours of frames are not free
            return emb
        from data_recipes.audio import array_to_mono, to_mono_rate

        if sample_rate is not None:
            y = array_to_mono(audio, sample_rate, self.sr, name=name or "audio array")
        else:
            y = to_mono_rate(np.asarray(audio), self.sr, None, name=name or "audio array")
        w, h = int(self.window * self.sr), int(self.hop * self.sr)
        wins = []
        a = 0
        while True:
            wins.append((a / self.sr, y[a:a + w]))
            if a + w >= len(y):
                break
            a += h
        return self._embed_windows(iter(wins), name or "audio array", progress)

    def _embed_windows(self, windows, name: str, progress: bool) -> AudioEmbedding:
        import torch

        from data_recipes.audio import AudioError

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        min_len = int(self.sr / self.fps) * 2
        chunks: list[tuple[int, torch.Tensor]] = []       # (first frame, dense [t, D])
        globs = []
        total = 0
        pending: list[tuple[float, np.ndarray]] = []

        def flush():
            if not pending:
                return
            by_len: dict[int, list] = {}
            for s, y in pending:
                by_len.setdefault(len(y), []).append((s, y))
            for n, group in by_len.items():
                wave = torch.from_numpy(np.stack([y for _, y in group]))
                if n < min_len:          # shorter than two frames: pad with silence
                    wave = torch.nn.functional.pad(wave, (0, min_len - n))
                with torch.inference_mode():
                    g, d = self.model.encode_audio(wave)
                for (s, y), gi, di in zip(group, g, d):
                    keep = max(1, int(round(len(y) / self.sr * self.fps)))
                    chunks.append((int(round(s * self.fps)), di[:keep]))
                    globs.append(gi)
            pending.clear()

        from tqdm import tqdm

        for s, y in tqdm(windows, desc="encode", disable=not progress, unit="win", leave=False):
            if not np.isfinite(y).all():
                raise AudioError(name, f"NaN or infinite samples near {s:.2f} s")
            pending.append((s, y))
            total = max(total, s + len(y) / self.sr)
            if len(pending) >= self.batch_windows:
                flush()
        flush()
        if not chunks:
            raise AudioError(name, "no audio samples")
        T = max(a + len(d) for a, d in chunks)
        D = chunks[0][1].shape[-1]
        acc = torch.zeros(T, D)
        wsum = torch.zeros(T, 1)
        for a, d in chunks:
            n = len(d)
            # triangular weight: a frame counts most from the window where it is most central
            pos = (torch.arange(n, dtype=torch.float32) + 0.5) / n
            w = (1.0 - (2 * pos - 1).abs()).clamp(min=0.05)[:, None]
            acc[a:a + n] += w * d
            wsum[a:a + n] += w
        dense = acc / wsum.clamp(min=1e-8)
        if getattr(self.model, "normalize_dense", True):   # YAMNet scorers carry logits, not unit vectors
            dense = torch.nn.functional.normalize(dense, dim=-1)
        return AudioEmbedding(dense, torch.stack(globs), self.fps, total, name)

    # ------------------------------------------------------------------ scoring
    def _text(self, phrases: list[str]):
        import torch

        if isinstance(phrases, str):
            raise TypeError("phrases must be a list of strings, not one string")
        if not phrases:
            raise ValueError("no phrases given")
        for i, p in enumerate(phrases):
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"phrase {i} ({p!r}) is empty; give a description such as 'dog barking'")
        with torch.inference_mode():
            return self.model.encode_text([p.strip() for p in phrases])

    def frame_scores(self, audio, phrases: list[str]) -> FrameScores:
        """Probability that each phrase is sounding, per frame ([N, T] at ``fps``)."""
        import torch

        emb = self.embed(audio)
        text = self._text(phrases)
        with torch.inference_mode():
            if hasattr(self.model, "prepare"):
                if emb.prepared is None:
                    emb.prepared = self.model.prepare(emb.dense[None])
                logits = self.model.frame_logits(emb.dense[None], text, prepared=emb.prepared)   # [1, N, T]
            else:
                logits = self.model.frame_logits(emb.dense[None], text)
            p = self.model.frame_probs(logits, text)[0]
        return FrameScores(list(phrases), p.numpy().astype(np.float32), emb.fps, emb.duration)

    def smoothed(self, scores: FrameScores, median_seconds: float | None = None) -> np.ndarray:
        ms = self.median_seconds if median_seconds is None else median_seconds
        size = max(1, int(round(ms * scores.fps)) | 1)
        return _median(scores.scores, size)

    def events(self, audio, phrases: list[str], *, threshold: float | None = None,
               median_seconds: float | None = None, min_duration: float = 0.0) -> list[DetectedEvent]:
        """Median-filtered frame scores above ``threshold`` -> intervals, scored by their peak."""
        fs = audio if isinstance(audio, FrameScores) else self.frame_scores(audio, phrases)
        thr = self.threshold if threshold is None else threshold
        sm = self.smoothed(fs, median_seconds)
        out = []
        for k, ph in enumerate(fs.phrases):
            for a, b in _runs(sm[k] > thr):
                s, e = a / fs.fps, min(b / fs.fps, fs.duration)
                if e - s >= min_duration:
                    out.append(DetectedEvent(ph, s, e, float(sm[k, a:b].max())))
        return sorted(out, key=lambda e: (e.start, e.phrase))

    def candidates(self, audio, phrase: str, k: int = 5, *, rel: float | None = None,
                   min_width: float = 0.5) -> list[tuple[float, float, float]]:
        """Top-``k`` windows ``(start, end, score)``, best first: greedy peak picking on the
        smoothed curve, each window grown while the score stays above ``rel`` x its peak
        (default: the checkpoint's ``candidate_rel``), then suppressed so the next pick is
        elsewhere. Always returns min(k, possible) windows, even when every score is low (the
        caller decides what is worth a look)."""
        if k <= 0:
            raise ValueError(f"k={k}: must be positive")
        rel = self.candidate_rel if rel is None else float(rel)
        fs = self.frame_scores(audio, [phrase])
        sm = self.smoothed(fs)[0].astype(np.float64)
        live = sm.copy()
        out = []
        half = max(1, int(round(min_width * fs.fps / 2)))
        for _ in range(k):
            j = int(np.argmax(live))
            if not np.isfinite(live[j]):
                break
            peak = sm[j]
            a = j
            while a > 0 and np.isfinite(live[a - 1]) and sm[a - 1] >= rel * peak:
                a -= 1
            b = j + 1
            while b < len(sm) and np.isfinite(live[b]) and sm[b] >= rel * peak:
                b += 1
            if b - a < 2 * half:  # narrower than min_width: widen around the window's own centre
                mid = (a + b) // 2
                a, b = min(a, max(0, mid - half)), max(b, min(len(sm), mid + half))
            live[a:b] = -np.inf
            out.append((a / fs.fps, min(b / fs.fps, fs.duration), float(peak)))
        return out

    def exists(self, audio, phrase: str) -> float:
        """Probability that ``phrase`` sounds anywhere in the audio: the peak of the smoothed
        frame probability, Platt-scaled when the checkpoint carries a validation fit
        (``earmark contrastive calibrate``). Decide with ``exists_threshold`` (chosen on held-out
        queries by ``earmark contrastive thresholds``), not 0.5: the calibration reflects the base
        rate of the data it was fitted on."""
        fs = self.frame_scores(audio, [phrase])
        peak = float(self.smoothed(fs, self.exists_median_seconds)[0].max())
        cal = self.existence_calibration
        if cal:
            z = np.log(max(peak, 1e-6) / max(1 - peak, 1e-6))
            return float(1 / (1 + np.exp(-(cal["a"] * z + cal["b"]))))
        return peak

    # ------------------------------------------------------------------ eval protocol
    def predict(self, audio_path, queries) -> list:
        """The eval Predictor protocol: one PredictionRecord per QueryRecord."""
        from data_recipes.formats import PredictionRecord

        out = []
        emb = self.embed(audio_path)
        for q in queries:
            t0 = time.perf_counter()
            fs = self.frame_scores(emb, [q.query])
            evs = self.events(fs, [q.query])
            score = self.exists(emb, q.query)
            ms = (time.perf_counter() - t0) * 1000
            windows = [(e.start, e.end, e.score) for e in evs]
            exists = score >= self.exists_threshold
            if exists and not windows:        # present but below the event threshold: best window
                windows = [self.candidates(emb, q.query, 1)[0]]
            out.append(PredictionRecord.for_query(q, exists=exists,
                                                  windows=windows, raw="", engine="scorer", ms=ms,
                                                  status="strict", score=score))
        return out
