"""The two-stage pipeline (SpotSound §2.1): is the sound there? then where? — with the scorer.

For each query about one recording:

1. **existence** — the grounder answers ``Yes.``/``No.``;
2. **localisation** — only after a "yes", the grounder answers ``From s seconds to e seconds, ...``.

The contrastive scorer (``contrastive.scorer.Scorer``) plays two parts (DESIGN.md "Pipeline"):

* **verifier**: when its existence probability is below ``absent_below`` it is confident the sound
  is absent, and the answer is "no" — without asking the LLM (``verifier="skip"``, the cheap one)
  or after asking it, the LLM's answer being kept for the record (``"overrule"``).
  With ``present_above`` set, a "no" from the LLM is overruled into a "yes" (and stage 2 runs)
  when the scorer is at least that sure the sound is there.
* **candidate generator**: its top-``top_k`` windows re-shape the LLM's: an LLM window that
  overlaps a candidate with IoU >= ``snap_iou`` takes the candidate's (finer, 40 ms) boundaries;
  with ``drop_below``, LLM windows whose mean frame probability is lower are dropped (the best one
  always stays). Every window gets the scorer's mean frame probability inside it as confidence.

Modes: ``llm`` (grounder alone; confidence = its "Yes" probability), ``scorer`` (scorer alone:
existence probability >= ``scorer_threshold`` and the median-filtered frames above its frame
threshold), ``fused`` (both, as above). Every threshold used is reported in each answer.

The audio prefix is encoded once per file and shared by every query and both stages
(:mod:`grounding.engines`). A recording too long for the grounder's context (hours) is refused in
``llm`` mode with one clear error; in ``fused`` mode the grounder is asked about ``crop_seconds``
crops centred on the scorer's top-k candidates instead (the scorer streams the whole file), and its
windows are mapped back to file time; ``scorer`` mode takes any length. Model answers of any shape are parsed strict-first, lenient-second
(:mod:`grounding.prompts`); what cannot be parsed gives ``status="unparsed"`` (counted, never
hidden, never a crash): an unparsed existence answer is no "yes" (status ``unparsed``); an
unparsed localisation answer after a "yes" gives no window (status ``lenient``, the stage's own
``unparsed`` kept in ``llm_status``).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .prompts import clean_query, parse_existence, parse_windows

MODES = ("llm", "scorer", "fused")
VERIFIERS = ("skip", "overrule", "off")
STATUS_ORDER = ("strict", "lenient", "repaired", "unparsed")
SAMPLE_RATE = 16000


def _prob(name: str, v, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= float(v) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]{' or null' if allow_none else ''}, got {v!r}")


@dataclass
class PipelineConfig:
    """How answers are made. JSON-serialisable; every threshold is echoed in each answer."""

    mode: str = "fused"
    max_new_tokens_exist: int = 6
    max_new_tokens_ground: int = 96     # ~4 windows of ~20 tokens (digits are single tokens)
    # scorer as verifier (fused)
    verifier: str = "skip"
    absent_below: float | None = None     # None = the scorer checkpoint's own (chosen on held-out queries)
    present_above: float | None = None
    # scorer alone (scorer mode)
    scorer_threshold: float | None = None  # None = the scorer checkpoint's own exists_threshold
    # the scorer's windows: "peaks" = its top_k candidate windows (each grown to half its peak)
    # whose peak is at least peak_ratio x the best one's; "events" = frames above event_threshold
    scorer_windows: str = "peaks"
    peak_ratio: float = 0.5
    event_threshold: float | None = None  # frame threshold; None = the scorer checkpoint's own
    # scorer as candidate generator (fused)
    top_k: int = 3
    snap_iou: float | None = 0.3
    # when none of the LLM's windows touches a scorer candidate (IoU < snap_iou, or no window could
    # be read), answer with the scorer's own peak windows instead ("scorer"), or keep the LLM's ("off")
    window_fallback: str = "scorer"
    # hint the LLM: write the scorer's top candidates into the grounding question ("auto": when the
    # grounder was trained with hints, i.e. its settings carry hint_k > 0; "off": never)
    hint: str = "auto"
    drop_below: float | None = None
    # audit: also ask stage 2 when stage 1 said "no" (how often would the grounder invent windows?)
    probe_ground: bool = False
    # fused, audio too long for the grounder's context: ask it about crops of this many seconds
    # centred on the scorer's top_k candidate windows instead of the whole file
    crop_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.verifier not in VERIFIERS:
            raise ValueError(f"verifier must be one of {VERIFIERS}, got {self.verifier!r}")
        for name in ("max_new_tokens_exist", "max_new_tokens_ground", "top_k"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.hint not in ("auto", "off"):
            raise ValueError(f"hint must be 'auto' or 'off', got {self.hint!r}")
        if self.window_fallback not in ("scorer", "off"):
            raise ValueError(f"window_fallback must be 'scorer' or 'off', got {self.window_fallback!r}")
        if self.scorer_windows not in ("peaks", "events"):
            raise ValueError(f"scorer_windows must be 'peaks' or 'events', got {self.scorer_windows!r}")
        for name in ("peak_ratio", "absent_below", "scorer_threshold", "present_above", "event_threshold", "snap_iou", "drop_below"):
            _prob(name, getattr(self, name), allow_none=True)
        if not isinstance(self.crop_seconds, (int, float)) or isinstance(self.crop_seconds, bool) \
                or not 1.0 <= float(self.crop_seconds) <= 3600.0:
            raise ValueError(f"crop_seconds must be a number of seconds in [1, 3600], got {self.crop_seconds!r}")
        if self.present_above is not None and self.absent_below is not None and self.present_above <= self.absent_below:
            raise ValueError(f"present_above ({self.present_above}) must be above absent_below ({self.absent_below})")

    def to_dict(self) -> dict:
        return asdict(self)

    def thresholds(self) -> dict:
        """The numbers that decided an answer in this mode (reported with every answer)."""
        if self.mode == "scorer":
            return {"scorer_threshold": self.scorer_threshold, "scorer_windows": self.scorer_windows,
                    **({"peak_ratio": self.peak_ratio} if self.scorer_windows == "peaks"
                       else {"event_threshold": self.event_threshold})}
        if self.mode == "llm":
            return {}
        return {"verifier": self.verifier, "absent_below": self.absent_below, "present_above": self.present_above,
                "top_k": self.top_k, "snap_iou": self.snap_iou, "drop_below": self.drop_below,
                "window_fallback": self.window_fallback, "hint": self.hint}


@dataclass
class Window:
    start: float
    end: float
    confidence: float

    def to_list(self) -> list[float]:
        return [round(self.start, 2), round(self.end, 2), round(float(self.confidence), 4)]


@dataclass
class Answer:
    """One query answered. ``status`` says how the text that decided the answer was read
    (``strict``/``lenient``/``repaired``/``unparsed``; ``strict`` when the scorer decided —
    nothing was parsed); ``llm_status`` gives each stage's own; ``raw`` the LLM's literal answers
    (None for a stage not asked); ``decided_by`` who settled existence (``llm``, ``scorer``,
    ``scorer-veto``, ``scorer-confirm``); ``score`` an existence score in [0, 1]."""

    query: str
    exists: bool
    windows: list[Window]
    score: float | None
    mode: str
    decided_by: str
    status: str
    duration: float
    raw: dict = field(default_factory=dict)
    llm_status: dict = field(default_factory=dict)
    scorer: dict | None = None
    thresholds: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    probe: dict | None = None           # stage 2 asked after a "no" (probe_ground)
    p_llm: float | None = None          # the LLM's P("Yes") against P("No") at stage 1 (None: not asked)
    curve: tuple | None = field(default=None, repr=False)  # (times [T], probs [T]); not serialised

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "curve"}
        d["windows"] = [w.to_list() for w in self.windows]
        d["score"] = None if self.score is None else round(float(self.score), 4)
        d["p_llm"] = None if self.p_llm is None else round(float(self.p_llm), 4)
        return d

    def answer_text(self) -> str:
        """The answer in the strict grammar (what the grounder is taught to say)."""
        if not self.exists:
            return "No."
        if not self.windows:
            return "Yes."
        return "Yes. From " + ", from ".join(f"{w.start:.2f} seconds to {w.end:.2f} seconds" for w in self.windows) + "."


# ---- audio in -------------------------------------------------------------------------------
def load_wave(audio, name: str | None = None) -> tuple[np.ndarray, str, Path | None]:
    """(16 kHz mono float32 samples, a name for errors, the path or None).

    ``audio``: a path; a ``(samples, sample_rate)`` pair; or 16 kHz samples. Arrays are (samples,),
    (channels, samples) or (samples, channels) when unambiguous (``data_recipes.audio.array_to_mono``,
    the same rule as ``Grounder.ask``). Empty, NaN or unreadable input raises one error naming it.
    """
    from data_recipes.audio import AudioError, array_to_mono, load_audio

    if isinstance(audio, (str, Path)):
        path = Path(audio)
        y = load_audio(path, sr=SAMPLE_RATE)
        name, src = name or str(path), path
    else:
        sr = SAMPLE_RATE
        if isinstance(audio, tuple) and len(audio) == 2:
            audio, sr = audio
        name, src = name or "audio array", None
        y = array_to_mono(audio, sr, SAMPLE_RATE, name=name)
    if y.size == 0:
        raise AudioError(name, "no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(name, "NaN or infinite samples")
    return y, name, src


# ---- window helpers -------------------------------------------------------------------------
def _iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _merge(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(windows):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _mean_in(curve, s: float, e: float) -> float:
    times, probs = curve
    sel = (times >= s) & (times < e)
    if not sel.any():  # a window narrower than a frame: the nearest frame
        return float(probs[int(np.argmin(np.abs(times - (s + e) / 2)))])
    return float(probs[sel].mean())


def _located(ground_status):
    """A "yes" whose windows could not be read is still a read "yes": its prediction status is
    ``lenient`` (not ``unparsed``, which eval takes as no answer at all and would then count the
    existence answer wrong); it gets no window, so its localisation counts as wrong, and
    ``llm_status["ground"]`` keeps the "unparsed" for the audit."""
    return "lenient" if ground_status == "unparsed" else ground_status


def _worst(*statuses) -> str:
    known = [s for s in statuses if s is not None]
    return max(known, key=STATUS_ORDER.index) if known else "strict"


def _p_yes(gen) -> float | None:
    """P("Yes") against P("No") at the first answer token, when the engine gave them."""
    lp = getattr(gen, "first_logprobs", None)
    if not lp or len(lp) != 2 or not all(math.isfinite(x) for x in lp):
        return None
    m = max(lp)
    a, b = math.exp(lp[0] - m), math.exp(lp[1] - m)
    return a / (a + b)


# ---- the pipeline ---------------------------------------------------------------------------
class Pipeline:
    """Answers queries about recordings with a grounder (backbone + engine), a scorer, or both."""

    def __init__(self, config: PipelineConfig | None = None, *, backbone=None, engine=None, scorer=None,
                 interleaver=None) -> None:
        self.config = config or PipelineConfig()
        mode = self.config.mode
        if mode in ("llm", "fused") and (backbone is None or engine is None):
            raise ValueError(f"mode {mode!r} needs a grounder (backbone and engine); none was given")
        if mode in ("scorer", "fused") and scorer is None:
            raise ValueError(f"mode {mode!r} needs a scorer; none was given")
        self.backbone, self.engine, self.scorer = backbone, engine, scorer
        # thresholds left unset come from the scorer checkpoint (or the library defaults)
        fill = {"scorer_threshold": getattr(scorer, "exists_threshold", 0.5),
                "absent_below": getattr(scorer, "absent_below", 0.1)}
        self.config = replace(self.config, **{k: v for k, v in fill.items() if getattr(self.config, k) is None})
        self.interleaver = interleaver
        self._features = None  # (wave, encoder features) of the file being answered
        if backbone is not None and interleaver is None:
            self.interleaver = interleaver_for(backbone)
        settings = dict(getattr(backbone, "settings", None) or {}) if backbone is not None else {}
        # candidates per hint; 0 = ask without (the grounder never saw hints, or they are off)
        self.hint_k = int(settings.get("hint_k") or 0) if self.config.hint == "auto" else 0
        if self.interleaver is not None:
            il = self.interleaver
            self._yes_no = [il.answer_ids("Yes.")[0], il.answer_ids("No.")[0]]

    # -- public --------------------------------------------------------------------------
    def ask(self, audio, query: str) -> Answer:
        return self.ask_many(audio, [query])[0]

    def ask_many(self, audio, queries: list[str], *, name: str | None = None) -> list[Answer]:
        """Answer every query about one recording; its audio is loaded and encoded once."""
        if isinstance(queries, str):
            raise ValueError("queries must be a list of strings; use ask() for one query")
        queries = [clean_query(q) for q in queries]
        t0 = time.perf_counter()
        timings: dict = {}
        mode = self.config.mode
        if isinstance(audio, (str, Path)):
            # read the header first: an hours-long file is refused (llm/fused) or streamed by the
            # scorer (scorer mode) without loading every sample into memory
            from data_recipes.audio import audio_info

            name = name or str(audio)
            duration = audio_info(audio).duration
            if mode == "llm":
                self._check_context(duration, name)
        too_long = False
        if mode == "fused" and isinstance(audio, (str, Path)):
            too_long = self._too_long(duration)
        if (mode == "scorer" or too_long) and isinstance(audio, (str, Path)):
            wave, path = None, Path(audio)  # streamed by the scorer, cropped for the grounder
        else:
            wave, name, path = load_wave(audio, name)
            duration = wave.size / SAMPLE_RATE
            too_long = mode == "fused" and self._too_long(duration)
        timings["load_ms"] = _ms(t0)
        # the samples when they are loaded anyway (fused: one decode of the file); the path otherwise
        sc = self._score(wave if wave is not None else path, name, queries, timings) if mode != "llm" else None
        if mode == "scorer":
            if sc and wave is None:
                duration = float(sc[0]["fs"].duration)
            answers = [self._scorer_answer(q, duration, sc[i]) for i, q in enumerate(queries)]
        elif too_long:
            answers = self._crop_answers(wave, path, name, duration, queries, sc, timings)
        else:
            answers = self._llm_answers(wave, name, duration, queries, sc, timings)
        self._features = None
        timings["total_ms"] = _ms(t0)
        timings["queries"] = len(queries)
        for a in answers:
            a.timings = dict(timings)
            a.thresholds = self.config.thresholds()
        return answers

    # -- scorer --------------------------------------------------------------------------
    def _score(self, audio, name: str, queries: list[str], timings: dict) -> list[dict]:
        t0 = time.perf_counter()
        from data_recipes.audio import AudioError

        try:
            emb = self.scorer.embed(audio, name=name)
        except AudioError:  # already names the file (and is a ValueError: keep it as it is)
            raise
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{name}: the scorer could not encode this audio ({exc})") from exc
        fs = self.scorer.frame_scores(emb, queries)
        smooth = self.scorer.smoothed(fs)
        times = fs.times()
        out = []
        for i, q in enumerate(queries):
            out.append({"p_exists": float(self.scorer.exists(emb, q)),
                        "candidates": [tuple(map(float, c)) for c in self.scorer.candidates(emb, q, k=self.config.top_k)],
                        "curve": (times, smooth[i]), "emb": emb, "fs": fs, "index": i})
        timings["scorer_ms"] = _ms(t0)
        return out

    def _scorer_answer(self, query: str, duration: float, s: dict) -> Answer:
        cfg = self.config
        if cfg.scorer_windows == "peaks":
            windows = self._peak_windows(s)
        else:
            sub = _subset(s["fs"], s["index"])
            events = self.scorer.events(sub, [query], threshold=cfg.event_threshold)
            windows = [Window(e.start, e.end, e.score) for e in events]
        exists = s["p_exists"] >= cfg.scorer_threshold
        if exists and not windows and s["candidates"]:  # present, but no frame above the event threshold
            c0, c1, c = s["candidates"][0]
            windows = [Window(c0, c1, c)]
        return Answer(query, exists, windows if exists else [], s["p_exists"], "scorer", "scorer", "strict", duration,
                      scorer=_scorer_report(s), curve=s["curve"])

    def _peak_windows(self, s: dict) -> list[Window]:
        """The scorer's candidates whose peak is at least peak_ratio x the best one's, merged."""
        from contrastive.scorer import peak_windows

        return [Window(a, b, c) for a, b, c in peak_windows(s["candidates"], self.config.peak_ratio)]

    # -- grounder ------------------------------------------------------------------------
    def _llm_answers(self, wave, name, duration, queries, sc, timings) -> list[Answer]:
        if len(queries) > 1 and self.backbone.query_conditioned_audio:
            # the audio prefix depends on the query: one prefix (shared by both stages) per query;
            # the encoder still runs once per file (_prefix keeps its features)
            return [a for i, q in enumerate(queries)
                    for a in self._llm_answers(wave, name, duration, [q], [sc[i]] if sc else None, timings)]
        cfg, mode = self.config, self.config.mode
        n = len(queries)
        ask_exist = list(range(n))
        veto = [False] * n
        if mode == "fused":
            veto = [s["p_exists"] < cfg.absent_below for s in sc]
            if cfg.verifier == "skip":
                ask_exist = [i for i in range(n) if not veto[i]]
            elif cfg.verifier == "off":
                veto = [False] * n
        q0 = queries[0] if n == 1 else None  # the prefix's query when it is query-conditioned
        prefix = self._prefix(wave, name, duration, timings, q0) if ask_exist or cfg.probe_ground else None
        exist_gen: dict[int, object] = {}
        if ask_exist:
            t0 = time.perf_counter()
            gens = self.engine.generate(prefix, [self.interleaver.question_ids("exist", queries[i]) for i in ask_exist],
                                        max_new_tokens=cfg.max_new_tokens_exist, score_ids=self._yes_no)
            exist_gen = dict(zip(ask_exist, gens))
            timings["exist_ms"] = _ms(t0)
        # existence decisions
        said, yes, decided, st_exist, p_llm = {}, [False] * n, ["llm"] * n, [None] * n, [None] * n
        for i in range(n):
            g = exist_gen.get(i)
            if g is not None:
                said[i], st_exist[i] = parse_existence(g.text)
                p_llm[i] = _p_yes(g)
            yes[i] = bool(said.get(i))
            if veto[i]:
                yes[i], decided[i] = False, "scorer-veto"
            elif mode == "fused" and cfg.present_above is not None and not yes[i] \
                    and sc[i]["p_exists"] >= cfg.present_above:
                yes[i], decided[i] = True, "scorer-confirm"
        ground_idx = [i for i in range(n) if yes[i]]
        probe_idx = [i for i in range(n) if not yes[i]] if cfg.probe_ground else []
        ground_gen: dict[int, object] = {}
        if ground_idx or probe_idx:
            if prefix is None:
                prefix = self._prefix(wave, name, duration, timings, q0)
            t0 = time.perf_counter()
            idx = ground_idx + probe_idx
            gens = self.engine.generate(prefix, [self.interleaver.question_ids("ground", queries[i], self._hint(sc, i))
                                                 for i in idx], max_new_tokens=cfg.max_new_tokens_ground)
            ground_gen = dict(zip(idx, gens))
            timings["ground_ms"] = _ms(t0)
        answers = []
        for i, q in enumerate(queries):
            s = sc[i] if sc is not None else None
            raw = {"exist": exist_gen[i].text if i in exist_gen else None,
                   "ground": ground_gen[i].text if (i in ground_gen and yes[i]) else None}
            llm_status = {"exist": st_exist[i]}
            windows: list[Window] = []
            st_ground = None
            if yes[i]:
                parsed = parse_windows(ground_gen[i].text, duration)
                st_ground = llm_status["ground"] = parsed.status
                windows = self._fuse_windows(parsed.windows, s, p_llm[i])
            probe = None
            if i in probe_idx:
                pw = parse_windows(ground_gen[i].text, duration)
                probe = {"raw": ground_gen[i].text, "status": pw.status, "windows": [[round(a, 2), round(b, 2)] for a, b in pw.windows]}
            if decided[i] == "scorer-veto":
                status = "strict"
            elif decided[i] == "scorer-confirm":
                status = _worst(_located(st_ground))
            else:
                status = _worst(st_exist[i], _located(st_ground))
            score = self._score_of(p_llm[i], s, said.get(i), decided[i])
            answers.append(Answer(q, yes[i], windows, score, self.config.mode, decided[i], status, duration, raw=raw,
                                  llm_status=llm_status, scorer=_scorer_report(s) if s else None, probe=probe,
                                  curve=s["curve"] if s else None, p_llm=p_llm[i]))
        return answers

    def _hint(self, sc, i: int, crop: tuple[float, float] | None = None):
        """The scorer's best ``hint_k`` candidates for query ``i`` (in crop time for a crop), or None
        when there is no hint to give (grounder trained without, hints off, or no scorer run)."""
        if not self.hint_k or not sc:
            return None
        ws = [(a, b) for a, b, _ in sc[i]["candidates"][:self.hint_k]]
        if crop is not None:
            c0, c1 = crop
            ws = [(max(a, c0) - c0, min(b, c1) - c0) for a, b in ws if b > c0 and a < c1]
        return ws

    def _prefix(self, wave, name, duration, timings, query: str | None = None):
        """Interleaved audio prefix embeddings, prepared by the engine (once per file, or once per
        query for backbones whose audio tokens depend on it; the encoder runs once per file)."""
        from .interleave import Sequence, collate

        bb, il = self.backbone, self.interleaver
        n_frames = il.duration_frames(duration)
        if n_frames < 1:
            raise ValueError(f"{name}: {duration:.3f} s of audio is shorter than one audio frame "
                             f"({1 / bb.frames_per_second:.2f} s)")
        ids, frame = il.prefix(n_frames)
        self._check_context(duration, name, len(ids))
        import torch

        t0 = time.perf_counter()
        try:
            if self._features is None or self._features[0] is not wave:
                self._features = (wave, bb.audio_features(wave))
            with torch.no_grad():
                audio = bb.project_audio(self._features[1], query)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        timings["encode_ms"] = round(timings.get("encode_ms", 0.0) + _ms(t0), 1)  # summed over crops
        if audio.shape[0] < n_frames:  # encoders that round down: interleave what exists, no frame invented
            ids, frame = il.prefix(audio.shape[0])
        t0 = time.perf_counter()
        emb = collate([Sequence(ids, frame, [-100] * len(ids), len(ids))], [audio], bb).inputs_embeds[0]
        prefix = self.engine.prepare(emb)
        timings["prefill_ms"] = round(timings.get("prefill_ms", 0.0) + _ms(t0), 1)
        return prefix

    # room left after the prefix for the longest question and answer
    _QUESTION_ROOM = 200

    def _too_long(self, duration: float) -> bool:
        try:
            self._check_context(duration, "audio")
        except ValueError:
            return True
        return False

    def _crop_answers(self, wave, path, name, duration, queries, sc, timings) -> list[Answer]:
        """Fused answers for audio longer than the grounder's context: both stages are asked about
        ``crop_seconds`` crops centred on the scorer's top-k candidates (DESIGN: the scorer says
        which windows are worth asking the LLM about); windows are mapped back to file time."""
        cfg = self.config
        L = min(float(cfg.crop_seconds), duration)
        self._check_context(L, f"{name} (crop of {L:.0f} s; lower crop_seconds)")
        n = len(queries)
        veto = [s["p_exists"] < cfg.absent_below for s in sc] if cfg.verifier != "off" else [False] * n
        confirm = [cfg.present_above is not None and s["p_exists"] >= cfg.present_above for s in sc]
        crops: dict[tuple, list[int]] = {}
        for i, s in enumerate(sc):
            if veto[i] and cfg.verifier == "skip":
                continue
            for c0, c1, _ in s["candidates"]:
                mid = (c0 + c1) / 2
                a = round(max(0.0, min(mid - L / 2, duration - L)), 1)
                crops.setdefault((a, round(min(duration, a + L), 1)), []).append(i)
        exist_ans: dict[int, list] = {i: [] for i in range(n)}  # (crop, text, parsed, status, p_yes)
        ground_ans: dict[int, list] = {i: [] for i in range(n)}
        t_exist = t_ground = 0.0
        conditioned = self.backbone.query_conditioned_audio
        for (a, b), idx_all in sorted(crops.items()):
            if wave is not None:
                seg = wave[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)]
            else:
                from data_recipes.audio import load_audio

                seg = load_audio(path, sr=SAMPLE_RATE, offset=a, duration=b - a)
            # one prefix per crop, or per (crop, query) when the audio tokens depend on the query
            for idx in ([[i] for i in idx_all] if conditioned else [idx_all]):
                prefix = self._prefix(seg, f"{name} [{a:.1f}-{b:.1f} s]", seg.size / SAMPLE_RATE, timings,
                                      queries[idx[0]] if conditioned else None)
                t0 = time.perf_counter()
                gens = self.engine.generate(prefix, [self.interleaver.question_ids("exist", queries[i]) for i in idx],
                                            max_new_tokens=cfg.max_new_tokens_exist, score_ids=self._yes_no)
                t_exist += time.perf_counter() - t0
                yes_idx = []
                for i, g in zip(idx, gens):
                    said, st = parse_existence(g.text)
                    exist_ans[i].append(((a, b), g.text, said, st, _p_yes(g)))
                    if (said or confirm[i]) and not veto[i]:
                        yes_idx.append(i)
                if yes_idx:
                    t0 = time.perf_counter()
                    gens = self.engine.generate(prefix, [self.interleaver.question_ids("ground", queries[i],
                                                                                        self._hint(sc, i, (a, b)))
                                                         for i in yes_idx], max_new_tokens=cfg.max_new_tokens_ground)
                    t_ground += time.perf_counter() - t0
                    for i, g in zip(yes_idx, gens):
                        pw = parse_windows(g.text, b - a)
                        ground_ans[i].append(((a, b), g.text, pw))
        timings["exist_ms"], timings["ground_ms"] = round(1000 * t_exist, 1), round(1000 * t_ground, 1)
        answers = []
        for i, q in enumerate(queries):
            s, ex = sc[i], exist_ans[i]
            yes_answers = [e for e in ex if e[2]]
            llm_yes = bool(yes_answers)
            decided = "llm"
            if veto[i]:
                yes, decided = False, "scorer-veto"
            elif not llm_yes and confirm[i]:
                yes, decided = True, "scorer-confirm"
            else:
                yes = llm_yes
            st_exist = _worst(*[e[3] for e in yes_answers]) if yes_answers else (_worst(*[e[3] for e in ex]) if ex else None)
            ps = [e[4] for e in ex if e[4] is not None]
            p_llm = max(ps) if ps else None
            wins, st_ground = [], None
            if yes:
                gs = ground_ans[i]
                read = [g[2].status for g in gs if g[2].status != "unparsed"]
                st_ground = _worst(*read) if read else ("unparsed" if gs else None)
                wins = _merge([(a + w0, a + w1) for (a, _), _, pw in gs for w0, w1 in pw.windows])
            windows = self._fuse_windows(wins, s, p_llm) if yes else []
            if decided == "scorer-veto":
                status = "strict"
            elif decided == "scorer-confirm":
                status = _worst(_located(st_ground))
            else:
                status = _worst(st_exist, _located(st_ground))
            raw = {"exist": " | ".join(f"[{a:.1f}-{b:.1f} s] {t}" for (a, b), t, *_ in ex) or None,
                   "ground": " | ".join(f"[{a:.1f}-{b:.1f} s] {t}" for (a, b), t, _ in ground_ans[i]) or None,
                   "crops": [[a, b] for (a, b), *_ in ex]}
            score = self._score_of(p_llm, s, llm_yes if ex else None, decided)
            answers.append(Answer(q, yes, windows, score, "fused", decided, status, duration, raw=raw,
                                  llm_status={"exist": st_exist, "ground": st_ground}, scorer=_scorer_report(s),
                                  curve=s["curve"], p_llm=p_llm))
        return answers

    def _check_context(self, duration: float, name: str, n_positions: int | None = None) -> None:
        """One clear error, before anything is encoded, when the audio is too long for the grounder."""
        limit = getattr(self.engine, "max_positions", None)
        if limit is None or duration <= 0:
            return
        if n_positions is None:
            n_frames = self.interleaver.duration_frames(duration)
            if n_frames < 1:
                return
            n_positions = len(self.interleaver.prefix(n_frames)[0]) if n_frames < 4 * limit else 4 * limit
        if n_positions + self._QUESTION_ROOM + self.config.max_new_tokens_ground > limit:
            per_s = n_positions / duration
            fits = max(0.0, (limit - self._QUESTION_ROOM - self.config.max_new_tokens_ground) / per_s)
            raise ValueError(f"{name}: {duration:.1f} s of audio needs {n_positions} prompt positions but the "
                             f"grounder's context holds {limit} (about {fits:.0f} s of audio); use --mode fused (the "
                             f"grounder is then asked about the scorer's best windows) or --mode scorer for "
                             f"recordings this long, or cut the file")

    def _fuse_windows(self, windows, s, p_llm) -> list[Window]:
        """The LLM's windows, snapped to / filtered by the scorer's candidates in fused mode."""
        cfg = self.config
        if s is None or cfg.mode != "fused":
            conf = 1.0 if p_llm is None else p_llm
            return [Window(a, b, conf) for a, b in windows]
        ws = list(windows)
        near = [w for w in ws if any(_iou(w, c) >= (cfg.snap_iou or 1e-9) for c in s["candidates"])]
        if not near and cfg.window_fallback == "scorer":
            # the LLM said "yes" but points nowhere the scorer hears the sound (or wrote no window)
            return self._peak_windows(s)
        if cfg.snap_iou is not None:
            snapped = []
            for w in ws:
                best = max(s["candidates"], key=lambda c: _iou(w, c), default=None)
                snapped.append((best[0], best[1]) if best is not None and _iou(w, best) >= cfg.snap_iou else w)
            ws = _merge(snapped)
        scored = [Window(a, b, _mean_in(s["curve"], a, b)) for a, b in ws]
        if cfg.drop_below is not None and scored:
            keep = [w for w in scored if w.confidence >= cfg.drop_below]
            scored = keep or [max(scored, key=lambda w: w.confidence)]
        return scored

    def _score_of(self, p_llm, s, said, decided) -> float | None:
        p_sc = s["p_exists"] if s is not None else None
        if decided == "scorer-veto" or p_llm is None and said is None:
            return p_sc
        if p_llm is None:
            p_llm = 1.0 if said else 0.0
        return p_llm if p_sc is None else (p_llm + p_sc) / 2


def interleaver_for(backbone):
    """The interleaver a checkpoint was trained with (granularity, timestamps on/off, prompt
    wrapping from its ``grounder_config.json`` settings); the defaults for an untrained base."""
    from .interleave import Interleaver
    from .prompts import PromptFormat

    s = dict(getattr(backbone, "settings", None) or {})
    if s.get("prompt_format"):
        fmt = PromptFormat(**s["prompt_format"])
    else:  # the backbone's own default (e.g. the embedded one's query soft token)
        fmt = backbone.prompt_format() if hasattr(backbone, "prompt_format") else None
    return Interleaver(backbone.tokenizer, granularity=float(s.get("granularity", 1.0)),
                       fps=backbone.frames_per_second, prompt_format=fmt, placeholder_id=backbone.audio_token_id,
                       interleave=bool(s.get("interleave", True)))


def _subset(fs, i: int):
    """One phrase's row of a FrameScores, as a FrameScores."""
    import copy

    sub = copy.copy(fs)
    sub.phrases = [fs.phrases[i]]
    sub.scores = fs.scores[i:i + 1]
    return sub


def _scorer_report(s: dict) -> dict:
    return {"p_exists": round(s["p_exists"], 4), "candidates": [[round(a, 2), round(b, 2), round(c, 4)]
                                                                 for a, b, c in s["candidates"]]}


def _ms(t0: float) -> float:
    return round(1000.0 * (time.perf_counter() - t0), 1)
