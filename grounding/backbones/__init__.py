"""Backbones of the grounder behind one interface (:class:`Backbone`); :func:`load_backbone`
picks the class from the checkpoint's config (or ``kind``)."""
from __future__ import annotations

import json
from pathlib import Path

from .base import GROUNDER_CONFIG, Backbone

KINDS = ("qwen2-audio", "audio-flamingo-3", "embedded", "embedded-lm")
_MODEL_TYPES = {"qwen2_audio": "qwen2-audio", "audioflamingo3": "audio-flamingo-3"}

__all__ = ["Backbone", "KINDS", "load_backbone", "detect_kind"]


def detect_kind(name_or_path: str) -> str:
    """The backbone kind of a local checkpoint directory (``grounder_config.json`` or the HF
    ``config.json`` model_type). Hub ids need an explicit ``kind``."""
    p = Path(name_or_path)
    if (p / GROUNDER_CONFIG).is_file():
        return json.loads((p / GROUNDER_CONFIG).read_text())["kind"]
    if (p / "config.json").is_file():
        mt = json.loads((p / "config.json").read_text()).get("model_type")
        if mt in _MODEL_TYPES:
            return _MODEL_TYPES[mt]
        raise ValueError(f"{name_or_path}: model_type {mt!r} is not a grounder backbone ({sorted(_MODEL_TYPES)})")
    if p.exists():
        raise ValueError(f"{name_or_path}: neither {GROUNDER_CONFIG} nor config.json found")
    # a hub id: guess from the name, as the user would read it
    low = name_or_path.lower()
    if "qwen2-audio" in low:
        return "qwen2-audio"
    if "flamingo" in low:
        return "audio-flamingo-3"
    raise ValueError(f"{name_or_path}: not a local checkpoint and its kind cannot be guessed; pass kind= one of {KINDS}")


def load_backbone(name_or_path, kind: str | None = None, **kw) -> Backbone:
    """Load a backbone from a local directory or a hub id. ``kw`` go to ``from_pretrained``
    (``dtype``, ``device``)."""
    name_or_path = str(name_or_path)
    kind = kind or detect_kind(name_or_path)
    if kind == "qwen2-audio":
        from .whisper_llm import Qwen2AudioBackbone as cls
    elif kind == "audio-flamingo-3":
        from .whisper_llm import AudioFlamingo3Backbone as cls
    elif kind == "embedded":
        from .embedded import EmbeddedBackbone as cls
    elif kind == "embedded-lm":
        from .embedded_lm import EmbeddedLMBackbone as cls
    else:
        raise ValueError(f"unknown backbone kind {kind!r}; expected one of {KINDS}")
    return cls.from_pretrained(name_or_path, **kw)
