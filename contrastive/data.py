"""Training data for the scorer: manifests -> cached log-mels -> batches with frame labels.

Heterogeneous supervision (FineLAP §3.1): a record with ``events`` gives frame labels for its
queries (and a caption if it has one); a caption-only record contributes to the clip loss only.
Log-mels are computed once per clip and cached (float16 ``.npy`` keyed by manifest + settings),
so a training step costs only the network. Augmentation (:class:`.config.AugmentConfig`): random gain (a constant in log-mel),
random crop of clips longer than the window, train wordings of the labels
(``data_recipes.vocabulary``; test wordings are never used), and as options time stretch, mixing in a
second clip, band shift, spectral tilt and frequency masks.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_recipes.audio import AudioError, load_audio
from data_recipes.formats import ManifestRecord, iter_jsonl, resolve_audio

from .config import AudioConfig, AugmentConfig
from .phrases import PhraseSampler


@dataclass
class Clip:
    id: str
    mel: np.ndarray                 # [n_mels, T0] float16, at the spectrogram rate
    events: list                    # [(query, start, end)] relative to the clip start
    caption: str | None

    @property
    def has_frames(self) -> bool:
        return bool(self.events)


def frame_labels(events, queries: list[str], n_frames: int, fps: float, offset: float = 0.0) -> np.ndarray:
    """[K, n_frames] {0,1}: frame j is positive for a query when its centre (j + 0.5) / fps
    (+ ``offset`` seconds) lies inside one of the query's events."""
    out = np.zeros((len(queries), n_frames), dtype=np.float32)
    centres = offset + (np.arange(n_frames) + 0.5) / fps
    index = {q: k for k, q in enumerate(queries)}
    for q, s, e in events:
        k = index.get(q)
        if k is not None:
            out[k, (centres >= s) & (centres < e)] = 1.0
    return out


def _cache_key(manifest: Path, cfg: AudioConfig, max_seconds: float, limit) -> str:
    st = manifest.stat()
    blob = json.dumps([str(manifest.resolve()), st.st_size, st.st_mtime_ns, cfg.sample_rate, cfg.n_mels,
                       cfg.n_fft, cfg.hop_length, max_seconds, limit], sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_clips(manifest: str | Path, cfg: AudioConfig, *, max_seconds: float = 30.0,
               limit: int | None = None, cache_dir: str | Path | None = None, split: str | None = None,
               progress: bool = True) -> list[Clip]:
    """Every usable record of ``manifest`` as a :class:`Clip` (audio cut to ``max_seconds``).

    Records with neither events nor caption are skipped (nothing to learn from); unreadable audio
    raises the :class:`AudioError` naming the file.
    """
    from tqdm import tqdm

    from .audio_encoders import LogMel

    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no such manifest")
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{manifest.stem}-{_cache_key(manifest, cfg, max_seconds, limit)}.npz"
        if cache.is_file():
            z = np.load(cache, allow_pickle=False)
            meta = json.loads(str(z["meta"]))
            return [Clip(m["id"], z[f"m{i}"], [tuple(e) for e in m["events"]], m["caption"])
                    for i, m in enumerate(meta)]
    fe = LogMel(cfg)
    recs = [r for r in iter_jsonl(manifest, ManifestRecord)
            if (r.events or r.caption) and (split is None or r.split in (None, split))]
    if limit is not None:
        recs = recs[:limit]
    clips = []
    for r in tqdm(recs, desc=f"log-mel {manifest.name}", disable=not progress, leave=False):
        path = resolve_audio(manifest, r)
        try:
            y = load_audio(path, cfg.sample_rate, duration=max_seconds)
        except AudioError as e:
            raise AudioError(path, f"{e.reason} (manifest {manifest}, record {r.id!r})") from None
        with torch.no_grad():
            mel = fe(torch.from_numpy(y)[None])[0].numpy().astype(np.float16)
        dur = len(y) / cfg.sample_rate
        evs = [(e.query, e.start, min(e.end, dur)) for e in r.events if e.start < dur]
        clips.append(Clip(r.id, mel, evs, r.caption))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        meta = [{"id": c.id, "events": [list(e) for e in c.events], "caption": c.caption} for c in clips]
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **{f"m{i}": c.mel for i, c in enumerate(clips)})
        tmp.replace(cache)
    return clips


class Batcher:
    """Random batches: mel [B, M, T0], captions, per-clip phrases [B][K], labels [B, K, T], mask.

    ``augment`` is an :class:`AugmentConfig` (``True``: its defaults; ``False``/``None``: off).
    Setting ``.augment = False`` later switches it off (validation) without losing the settings.
    """

    def __init__(self, clips: list[Clip], cfg: AudioConfig, sampler: PhraseSampler, n_phrases: int,
                 wordings: dict[str, list[str]] | None = None, augment: bool | AugmentConfig | None = True,
                 seed: int = 0):
        if not clips:
            raise ValueError("Batcher: no clips to train on")
        self.clips, self.cfg, self.sampler, self.n = clips, cfg, sampler, n_phrases
        self.aug = AugmentConfig() if augment is True else (augment or None)
        self.augment = self.aug is not None
        self.wordings = (wordings or {}) if self.aug is None or self.aug.wordings else {}
        self.framed = [c for c in clips if c.has_frames]      # what a mixed-in clip is drawn from
        self.rng = random.Random(seed)
        self.spec_per_s = cfg.sample_rate / cfg.hop_length
        self.T0 = int(round(cfg.window_seconds * self.spec_per_s)) // cfg.time_pool * cfg.time_pool
        self.fps = cfg.frames_per_second
        # the mel of digital silence, used to pad short clips
        self.pad_value = float(np.log(1e-6))

    def state(self) -> object:
        return self.rng.getstate()

    def set_state(self, s) -> None:
        self.rng.setstate(s)

    def _view(self, clip: Clip, rng: random.Random, crop_rng: random.Random) -> tuple[np.ndarray, float, float]:
        """The window the model sees of ``clip``: mel [M, T0], the source time of its start, and its
        frame rate in source time (``fps / r`` after a time stretch by r)."""
        aug = self.aug if self.augment else None
        mel = clip.mel.astype(np.float32)
        span = self.T0
        if aug is not None and aug.stretch > 0:
            r = math.exp(rng.uniform(-1.0, 1.0) * math.log1p(aug.stretch))
            span = max(self.cfg.time_pool, int(round(self.T0 * r)))
        T = mel.shape[1]
        a = 0
        if T > span:
            a = crop_rng.randrange(T - span + 1) if aug is not None else 0
            src = mel[:, a:a + span]
        else:
            src = np.full((mel.shape[0], span), self.pad_value, dtype=np.float32)
            src[:, :T] = mel
        if span != self.T0:         # linear interpolation along time onto the window's T0 frames
            x = np.clip((np.arange(self.T0) + 0.5) * span / self.T0 - 0.5, 0, span - 1)
            i0 = np.floor(x).astype(int)
            i1 = np.minimum(i0 + 1, span - 1)
            w = (x - i0).astype(np.float32)
            src = src[:, i0] * (1 - w) + src[:, i1] * w
        return src, a / self.spec_per_s, self.fps * self.T0 / span

    def _colour(self, mel: np.ndarray, rng: random.Random) -> np.ndarray:
        """Spectral augmentations (shift, tilt, masks): the same sound through another microphone."""
        aug, M = self.aug, mel.shape[0]
        if aug.freq_shift:
            k = rng.randint(-aug.freq_shift, aug.freq_shift)
            if k > 0:
                mel = np.concatenate([np.repeat(mel[:1], k, 0), mel[:-k]], 0)
            elif k < 0:
                mel = np.concatenate([mel[-k:], np.repeat(mel[-1:], -k, 0)], 0)
        if aug.eq:
            f = np.linspace(0.0, 1.0, M, dtype=np.float32)[:, None]
            mel = mel + sum(rng.uniform(-aug.eq, aug.eq) / k * np.cos(np.pi * k * f) for k in (1, 2, 3))
        if aug.freq_masks:
            mel = mel.copy()
            fill = float(mel.mean())
            for _ in range(aug.freq_masks):
                w = rng.randint(0, min(aug.freq_mask_width, M - 1))
                f0 = rng.randint(0, M - w)
                mel[f0:f0 + w] = fill
        return mel

    def make(self, clips: list[Clip], rng: random.Random | None = None) -> dict:
        rng = rng or self.rng
        aug = self.aug if self.augment else None
        L = self.T0 // self.cfg.time_pool
        mels, captions, phrases, labels, masks = [], [], [], [], []
        for c in clips:
            mel, offset, fps = self._view(c, rng, self.rng)
            if aug is not None:
                mel = mel + rng.uniform(-aug.gain, aug.gain)   # a gain is a constant in log power
            views = [(c.events, offset, fps)]
            # mixing: frame labels are the union of both clips'; the clip loss keeps the first clip's
            # caption (the second is 0-8.7 dB quieter, and captions are not composable)
            if aug is not None and aug.mix_prob and c.has_frames and rng.random() < aug.mix_prob:
                other = rng.choice(self.framed)
                mel2, off2, fps2 = self._view(other, rng, rng)
                mel = np.logaddexp(mel, mel2 - rng.uniform(0.0, aug.mix_gain))
                views.append((other.events, off2, fps2))
            if aug is not None:
                mel = self._colour(mel, rng)
            mels.append(mel)
            captions.append(c.caption)
            pos = list(dict.fromkeys(q for evs, _, _ in views for q, s, e in evs))
            if not pos:
                phrases.append([])
                labels.append(np.zeros((self.n, L), np.float32))
                masks.append(np.zeros(self.n, bool))
                continue
            lab = np.max([frame_labels(evs, pos, L, f, o) for evs, o, f in views], axis=0)
            # a positive cropped out of the window would be a false positive label: drop it
            keep = [k for k in range(len(pos)) if lab[k].any()] or list(range(len(pos)))
            pos, lab = [pos[k] for k in keep], lab[keep]
            shown = [rng.choice(self.wordings[p]) if aug is not None and p in self.wordings else p for p in pos]
            ph, is_pos = self.sampler.fill(pos, self.n, rng)
            ph = shown + ph[len(pos):]
            full = np.zeros((self.n, L), np.float32)
            full[:len(pos)] = lab[:self.n]
            m = np.zeros(self.n, bool)
            m[:len(ph)] = True
            phrases.append(ph)
            labels.append(full)
            masks.append(m)
        return {"mel": torch.from_numpy(np.stack(mels)), "captions": captions, "phrases": phrases,
                "labels": torch.from_numpy(np.stack(labels)), "mask": torch.from_numpy(np.stack(masks))}

    def sample(self, batch_size: int) -> dict:
        return self.make([self.rng.choice(self.clips) for _ in range(batch_size)])


def index_phrases(phrases: list[list[str]], n: int) -> tuple[list[str], torch.Tensor]:
    """Unique phrases of a batch and [B, n] indices into them (padding slots point at 0)."""
    uniq = sorted({p for ph in phrases for p in ph}) or ["sound"]
    pos = {p: i for i, p in enumerate(uniq)}
    idx = torch.zeros(len(phrases), n, dtype=torch.long)
    for b, ph in enumerate(phrases):
        for k, p in enumerate(ph):
            idx[b, k] = pos[p]
    return uniq, idx
