"""The Python API, mirroring ``earmark ask``:

    from grounding.api import Grounder

    g = Grounder.from_pretrained()                      # the embedded defaults of the package
    a = g.ask("street.flac", "a dog barks")
    a.exists, [(w.start, w.end, w.confidence) for w in a.windows]
    g.ask_many("street.flac", ["dog barking", "car horn"])   # audio encoded once

``grounder`` is a checkpoint directory (``earmark grounding train`` output, its ``merged/``, or any
Qwen2-Audio / AF3 directory); ``scorer`` a ``earmark contrastive train`` output. ``None`` means the
embedded default shipped in the package (``grounding/default/``, ``contrastive/default/``) — when it
is there. ``mode="auto"`` uses ``fused`` when both models are available, otherwise the one that
is; a mode whose model is missing fails with :class:`MissingModelError` saying what is missing.
"""
from __future__ import annotations

from pathlib import Path

from .pipeline import MODES, Answer, Pipeline, PipelineConfig

GROUNDER_DEFAULT_DIR = Path(__file__).with_name("default")


class MissingModelError(FileNotFoundError):
    """No model for what was asked; the message says which one and how to get it."""


def default_scorer_dir() -> Path | None:
    """The embedded scorer of the package, or None when this install has none."""
    try:
        from contrastive.scorer import DEFAULT_DIR
    except ImportError:
        return None
    return DEFAULT_DIR if (DEFAULT_DIR / "config.json").is_file() else None


def default_grounder_dir() -> Path | None:
    """The embedded grounder of the package, or None when this install has none."""
    d = resolve_grounder_dir(GROUNDER_DEFAULT_DIR, must_exist=False)
    return d


ADAPTER_SETTINGS = "grounder_settings.json"


def resolve_grounder_dir(path, *, must_exist: bool = True) -> Path | None:
    """A grounder checkpoint directory: ``path`` itself, or its ``merged/`` (a training run), or
    a LoRA adapter directory (``adapter_config.json`` + ``grounder_settings.json``, or the run's
    ``adapter/`` when it has no ``merged/``)."""
    p = Path(path)
    for d in (p, p / "merged"):
        if (d / "grounder_config.json").is_file() or (d / "config.json").is_file():
            return d
    for d in (p, p / "adapter"):
        if (d / "adapter_config.json").is_file() and (d / ADAPTER_SETTINGS).is_file():
            return d
    if must_exist:
        what = ("no such directory" if not p.exists() else
                "no grounder_config.json or config.json (nor merged/), and no LoRA adapter with grounder_settings.json")
        raise MissingModelError(f"grounder {path}: {what}")
    return None


def load_grounder(path, *, device=None):
    """The backbone of a checkpoint directory; for a LoRA adapter, its base (``grounder_settings.json``
    names it) with the adapter merged, and the adapter's interleaving/prompt settings."""
    import json

    from .backbones import load_backbone

    p = Path(path)
    settings_path = p / ADAPTER_SETTINGS
    if not ((p / "adapter_config.json").is_file() and settings_path.is_file()):
        return load_backbone(p, device=device)
    from peft import PeftModel

    s = json.loads(settings_path.read_text())
    if not s.get("base"):
        raise MissingModelError(f"{settings_path}: no 'base' (the checkpoint the adapter was trained on)")
    try:
        bb = load_backbone(s["base"], s.get("kind"), device=device)
    except (OSError, ValueError) as exc:
        raise MissingModelError(f"grounder {path}: its base {s['base']!r} could not be loaded ({exc})") from None
    bb.model = PeftModel.from_pretrained(bb.model, str(p)).merge_and_unload()
    bb.model.eval()
    bb.settings = {k: s[k] for k in ("granularity", "interleave", "prompt_format", "hint_k") if k in s}
    return bb


def _missing_message(need: list[str]) -> str:
    parts = []
    if "scorer" in need:
        parts.append("a scorer (--scorer DIR, an `earmark contrastive train` output; the embedded default "
                     "contrastive/default/ is not in this install)")
    if "grounder" in need:
        parts.append("a grounder (--grounder DIR, an `earmark grounding train` output or a Qwen2-Audio/AF3 "
                     "checkpoint; the embedded default grounding/default/ is not in this install)")
    return "no model to answer with: need " + " and ".join(parts)


class Grounder:
    """A ready :class:`~grounding.pipeline.Pipeline` with the models it was built from."""

    def __init__(self, pipeline: Pipeline, *, sources: dict | None = None) -> None:
        self.pipeline = pipeline
        self.sources = dict(sources or {})

    @property
    def mode(self) -> str:
        return self.pipeline.config.mode

    @property
    def config(self) -> PipelineConfig:
        return self.pipeline.config

    @classmethod
    def from_pretrained(cls, grounder=None, scorer=None, *, mode: str = "auto", engine: str = "hf",
                        engine_options: dict | None = None, config: PipelineConfig | dict | None = None,
                        device=None, **overrides) -> "Grounder":
        """Load the models ``mode`` needs. ``config``/``overrides``: PipelineConfig fields
        (thresholds, ...); ``engine_options`` go to the engine (``hf``: ``max_batch``)."""
        if mode != "auto" and mode not in MODES:
            raise ValueError(f"mode must be 'auto' or one of {MODES}, got {mode!r}")
        g_dir = resolve_grounder_dir(grounder) if grounder is not None else default_grounder_dir()
        if scorer is not None:
            from contrastive.scorer import resolve_scorer_dir

            s_dir = resolve_scorer_dir(scorer)
            if not (s_dir / "config.json").is_file():
                what = "no such directory" if not s_dir.exists() else "no config.json (not a scorer checkpoint)"
                raise MissingModelError(f"scorer {scorer}: {what}")
        else:
            s_dir = default_scorer_dir()
        if mode == "auto":
            if g_dir is not None and s_dir is not None:
                mode = "fused"
            elif g_dir is not None:
                mode = "llm"
            elif s_dir is not None:
                mode = "scorer"
            else:
                raise MissingModelError(_missing_message(["scorer", "grounder"]))
        need = [m for m, d in (("grounder", g_dir), ("scorer", s_dir))
                if d is None and (m == "scorer" and mode in ("scorer", "fused") or m == "grounder" and mode in ("llm", "fused"))]
        if need:
            raise MissingModelError(f"mode {mode!r}: " + _missing_message(need))
        if isinstance(config, PipelineConfig):
            cfg = PipelineConfig(**(config.to_dict() | overrides | {"mode": mode}))
        else:
            cfg = PipelineConfig(**(dict(config or {}) | overrides | {"mode": mode}))
        backbone = eng = sc = None
        if mode in ("llm", "fused"):
            from .engines.base import make_engine

            backbone = load_grounder(g_dir, device=device)
            eng = make_engine(engine, backbone, **(engine_options or {}))
        if mode in ("scorer", "fused"):
            from contrastive.scorer import Scorer

            sc = Scorer.from_pretrained(s_dir)
        sources = {"grounder": str(g_dir) if backbone is not None else None,
                   "scorer": str(s_dir) if sc is not None else None,
                   "engine": engine if backbone is not None else None}
        return cls(Pipeline(cfg, backbone=backbone, engine=eng, scorer=sc), sources=sources)

    def ask(self, audio, query: str) -> Answer:
        """Does ``query`` happen in ``audio`` (a path, 16 kHz samples, or (samples, rate)) and when?"""
        return self.pipeline.ask(audio, query)

    def ask_many(self, audio, queries: list[str]) -> list[Answer]:
        """Several queries about one recording; its audio is encoded once for all of them."""
        return self.pipeline.ask_many(audio, queries)

    def describe(self) -> dict:
        return {"mode": self.mode, **self.sources, "config": self.config.to_dict()}

    def close(self) -> None:
        eng = self.pipeline.engine
        if eng is not None:
            eng.close()
