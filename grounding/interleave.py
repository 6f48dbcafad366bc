"""Audio -> tokens: audio frames interleaved with textual timestamps (SpotSound §2.2).

Before each step of audio frames (``granularity`` seconds: 0.2, 1 — the default — or 2) goes the
text ``timestamp: {t} seconds; feature: ``, then that step's frames:

    [before_audio] ts(0) f0..f24 ts(1) f25..f49 ... ts(n) f(25n)..f(T-1) [question] [answer]

A partial last step keeps its timestamp and only the frames that exist; no frame is dropped,
repeated or moved. Timestamps are written as short as the granularity allows: ``12`` for 1 s and
2 s steps, ``12.4`` for 0.2 s steps (``{t:.{d}f}`` with ``d`` the granularity's decimals).

A :class:`Sequence` is the layout of one example as three parallel lists — ``ids`` (text ids; the
backbone's audio placeholder id where a frame goes), ``frame`` (the audio frame at that position,
-1 for text) and ``labels`` (-100 except answer tokens) — so the same layout gives both
representations: manual ``inputs_embeds`` (:func:`collate`) or ``<|AUDIO|>`` placeholder ids.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .prompts import PromptFormat, clean_query, format_existence, format_windows

GRANULARITIES = (0.2, 1.0, 2.0)
IGNORE = -100


def _decimals(granularity: float) -> int:
    for d in range(4):
        if abs(round(granularity, d) - granularity) < 1e-9:
            return d
    raise ValueError(f"granularity {granularity} has more than 3 decimals")


def timestamp_text(t: float, granularity: float) -> str:
    """``timestamp: 12 seconds; feature: `` (1 s / 2 s) or ``timestamp: 12.4 seconds; feature: `` (0.2 s)."""
    d = _decimals(granularity)
    return f"timestamp: {t:.{d}f} seconds; feature: "


def frames_per_step(granularity: float, fps: float) -> int:
    n = granularity * fps
    if granularity <= 0 or abs(n - round(n)) > 1e-6 or round(n) < 1:
        raise ValueError(f"granularity {granularity} s is not a whole number of audio frames at {fps} frames/s")
    return int(round(n))


def steps(n_frames: int, *, granularity: float, fps: float) -> list[tuple[float, int, int]]:
    """``(t, first_frame, n)`` for each step; the last one may be partial."""
    k = frames_per_step(granularity, fps)
    d = _decimals(granularity)
    return [(round(i * granularity, d), f0, min(k, n_frames - f0)) for i, f0 in enumerate(range(0, n_frames, k))]


@dataclass
class Sequence:
    ids: list[int]
    frame: list[int]
    labels: list[int]
    prefix_len: int  # positions of the shared audio prefix (before_audio + interleaved audio)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


class Interleaver:
    """Builds :class:`Sequence` layouts for one tokenizer, granularity and prompt format.

    ``interleave=False`` leaves the timestamps out (the paper's Table 7 ablation): the frames then
    follow each other with nothing to read the time from.
    """

    def __init__(self, tokenizer, *, granularity: float = 1.0, fps: float = 25.0,
                 prompt_format: PromptFormat | None = None, placeholder_id: int | None = None,
                 interleave: bool = True) -> None:
        if not any(abs(granularity - g) < 1e-9 for g in GRANULARITIES):
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity}")
        frames_per_step(granularity, fps)
        self.tokenizer, self.granularity, self.fps, self.interleave = tokenizer, float(granularity), float(fps), interleave
        self.format = prompt_format or PromptFormat.for_tokenizer(tokenizer)
        self.placeholder_id = placeholder_id if placeholder_id is not None else tokenizer.pad_token_id
        self._cache: dict[str, list[int]] = {}

    def tok(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self.tokenizer(text, add_special_tokens=False).input_ids
            if len(self._cache) < 20000:
                self._cache[text] = ids
        return list(ids)

    def prefix(self, n_frames: int) -> tuple[list[int], list[int]]:
        """(ids, frame) of ``before_audio`` + the interleaved audio of ``n_frames`` frames."""
        if n_frames < 1:
            raise ValueError(f"no audio frames to interleave (n_frames={n_frames})")
        ids = self.tok(self.format.before_audio) if self.format.before_audio else []
        frame = [-1] * len(ids)
        for t, f0, n in steps(n_frames, granularity=self.granularity, fps=self.fps):
            if self.interleave:
                ts = self.tok(timestamp_text(t, self.granularity))
                ids += ts
                frame += [-1] * len(ts)
            ids += [self.placeholder_id] * n
            frame += list(range(f0, f0 + n))
        return ids, frame

    def question_ids(self, stage: str, query: str, hint=None) -> list[int]:
        return self.tok(self.format.question(stage, query, hint))

    def answer_ids(self, answer: str) -> list[int]:
        return self.tok(answer + self.format.answer_end)

    def sequence(self, n_frames: int, stage: str, query: str, answer: str | None = None, *, hint=None,
                 **meta) -> Sequence:
        """One example; with ``answer`` its tokens (and the end token) are the only labels; ``hint``:
        candidate windows written after the query (:func:`grounding.prompts.format_hint`)."""
        ids, frame = self.prefix(n_frames)
        p = len(ids)
        meta.setdefault("query", clean_query(query))  # the text the question spells (soft-token backbones)
        q = self.question_ids(stage, query, hint)
        ids, frame = ids + q, frame + [-1] * len(q)
        labels = [IGNORE] * len(ids)
        if answer is not None:
            a = self.answer_ids(answer)
            ids, frame, labels = ids + a, frame + [-1] * len(a), labels + a
        return Sequence(ids, frame, labels, p, meta)

    def duration_frames(self, duration: float) -> int:
        return int(math.floor(duration * self.fps + 1e-6))


def answer_for(stage: str, windows) -> str:
    """The target text of an example: existence -> Yes./No.; grounding -> the windows."""
    if stage == "exist":
        return format_existence(bool(windows))
    return format_windows(windows)


@dataclass
class Batch:
    inputs_embeds: "torch.Tensor"   # [B, L, H]
    attention_mask: "torch.Tensor"  # [B, L] 1 = real
    position_ids: "torch.Tensor"    # [B, L] 0.. over real positions
    labels: "torch.Tensor"          # [B, L] -100 except answer tokens
    ids: "torch.Tensor"             # [B, L] text ids / placeholder ids, pad id on padding
    frame: "torch.Tensor"           # [B, L] audio frame index, -1 for text and padding


def collate(seqs: list[Sequence], audio: list, backbone, *, padding_side: str = "right") -> Batch:
    """Pad a list of sequences (each with its audio embeddings [T_i, H]) into one batch.

    Use ``padding_side="left"`` for generation (answers continue at the same column) and "right"
    for training. Audio embeddings replace the placeholder rows of the text embeddings.
    """
    import torch

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if len(seqs) != len(audio):
        raise ValueError(f"collate: {len(seqs)} sequences but {len(audio)} audio embeddings")
    L = max(len(s) for s in seqs)
    B = len(seqs)
    pad = backbone.tokenizer.pad_token_id
    ids = torch.full((B, L), pad, dtype=torch.long)
    frame = torch.full((B, L), -1, dtype=torch.long)
    labels = torch.full((B, L), IGNORE, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for b, s in enumerate(seqs):
        n = len(s)
        sl = slice(L - n, L) if padding_side == "left" else slice(0, n)
        ids[b, sl] = torch.tensor(s.ids)
        frame[b, sl] = torch.tensor(s.frame)
        labels[b, sl] = torch.tensor(s.labels)
        mask[b, sl] = 1
        top = max(s.frame)
        if top >= audio[b].shape[0]:
            raise ValueError(f"collate: sequence {b} needs audio frame {top} but its audio has {audio[b].shape[0]} frames")
    device = backbone.device
    emb = backbone.embed_text(ids.to(device), query=[s.meta.get("query", "") for s in seqs])
    is_audio = frame >= 0
    if is_audio.any():
        rows = torch.cat([audio[b].to(device, emb.dtype)[frame[b][is_audio[b]]] for b in range(B)], 0)
        emb = emb.masked_scatter(is_audio.to(device).unsqueeze(-1), rows)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(emb, mask.to(device), pos.to(device), labels.to(device), ids, frame)
