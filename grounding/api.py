"""The Python API, mirroring ``earmark ask``:

    from grounding.api import Grounder

    g = Grounder.from_pretrained()                      # the embedded defaults of the package
    a = g.ask("street.flac", "a dog barks")
    g.ask(samples, "a dog barks", sample_rate=44100)    # an array: its rate is required
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

from .pipeline import MODES, SAMPLE_RATE, Answer, Pipeline, PipelineConfig

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


def _wave(audio, sample_rate):
    """A path as it is (its header has the rate); an array -> mono samples at the pipeline's rate.
    A ``(samples, rate)`` pair is an array with its rate."""
    if isinstance(audio, (str, Path)):
        if sample_rate is not None:
            raise ValueError(f"sample_rate={sample_rate!r} is for arrays of samples; the rate of {audio} "
                             f"is read from its header")
        return audio
    import numpy as np

    from data_recipes.audio import array_to_mono

    if isinstance(audio, tuple) and len(audio) == 2 and sample_rate is None and np.ndim(audio[1]) == 0:
        audio, sample_rate = audio
    return array_to_mono(audio, sample_rate, SAMPLE_RATE)


SAVED, SAVED_LIBRARY = "earmark_grounder.json", "earmark.grounding"


def _grounder_source(grounder, revision) -> Path:
    """An existing path as it is; a Hugging Face Hub id -> its snapshot directory."""
    from contrastive.scorer import hub_snapshot, looks_like_hub_id

    p = Path(grounder)
    if p.exists() or not looks_like_hub_id(grounder):
        return p
    try:
        return hub_snapshot(str(grounder), what="grounder", revision=revision)
    except FileNotFoundError as exc:
        raise MissingModelError(str(exc)) from None


def _read_saved(path: Path) -> dict | None:
    """The settings of a ``Grounder.save_pretrained`` directory, or None for any other directory."""
    import json

    f = path / SAVED
    if not f.is_file():
        return None
    try:
        saved = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{f}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(saved, dict) or saved.get("library") != SAVED_LIBRARY or saved.get("mode") not in MODES \
            or not isinstance(saved.get("config"), dict):
        raise ValueError(f"{f}: not a saved earmark grounder (needs library {SAVED_LIBRARY!r}, a mode of "
                         f"{MODES} and a config object)")
    return saved


def _scorer_dir(scorer) -> Path:
    from contrastive.scorer import resolve_scorer_dir

    try:
        s_dir = resolve_scorer_dir(scorer)
    except FileNotFoundError as exc:
        raise MissingModelError(str(exc)) from None
    if not (s_dir / "config.json").is_file():
        what = "no such directory" if not s_dir.exists() else "no config.json (not a scorer checkpoint)"
        raise MissingModelError(f"scorer {scorer}: {what}")
    return s_dir


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
                        device=None, revision: str | None = None, **overrides) -> "Grounder":
        """Load the models ``mode`` needs. ``grounder``: a checkpoint directory, a
        :meth:`save_pretrained` directory (its models, mode and settings), or a Hugging Face Hub
        id of either (at ``revision``; resolved through ``huggingface_hub``, offline from its cache
        with ``HF_HUB_OFFLINE=1``); ``scorer``: a directory, shipped name or Hub id. ``config``/
        ``overrides``: PipelineConfig fields (thresholds, ...), over a saved directory's own;
        ``engine_options`` go to the engine (``hf``: ``max_batch``)."""
        if mode != "auto" and mode not in MODES:
            raise ValueError(f"mode must be 'auto' or one of {MODES}, got {mode!r}")
        if grounder is not None:
            grounder = _grounder_source(grounder, revision)
            saved = _read_saved(grounder)
            if saved is not None:
                if isinstance(config, PipelineConfig):
                    config = config.to_dict()
                g_dir = grounder / "grounder" if (grounder / "grounder").is_dir() else None
                s_dir = _scorer_dir(scorer) if scorer is not None else (
                    grounder / "scorer" if (grounder / "scorer").is_dir() else None)
                return cls._assemble(g_dir, s_dir, mode=saved["mode"] if mode == "auto" else mode, engine=engine,
                                     engine_options=engine_options, config=saved["config"] | dict(config or {}),
                                     device=device, overrides=overrides)
        g_dir = resolve_grounder_dir(grounder) if grounder is not None else default_grounder_dir()
        s_dir = _scorer_dir(scorer) if scorer is not None else default_scorer_dir()
        return cls._assemble(g_dir, s_dir, mode=mode, engine=engine, engine_options=engine_options, config=config,
                             device=device, overrides=overrides)

    def save_pretrained(self, path) -> Path:
        """Write this grounder's models and settings to one directory that :meth:`from_pretrained`
        loads back (and, uploaded with ``huggingface_hub.upload_folder``, loads by Hub id):
        ``earmark_grounder.json`` (mode and every PipelineConfig field), ``scorer/``
        (``Scorer.save_pretrained``) and ``grounder/`` (the backbone's ``save_pretrained``), each
        only when this grounder has that model."""
        import json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.pipeline.scorer is not None:
            self.pipeline.scorer.save_pretrained(path / "scorer")
        if self.pipeline.backbone is not None:
            self.pipeline.backbone.save_pretrained(path / "grounder")
        saved = {"library": SAVED_LIBRARY, "format_version": 1, "mode": self.mode, "config": self.config.to_dict()}
        (path / SAVED).write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def _assemble(cls, g_dir, s_dir, *, mode, engine, engine_options, config, device, overrides) -> "Grounder":
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

    def ask(self, audio, query: str, *, sample_rate: int | None = None) -> Answer:
        """Does ``query`` happen in ``audio`` and when? ``audio``: a path, or an array of samples
        with its ``sample_rate`` (any rate; (samples,), (channels, samples) or (samples, channels))."""
        return self.pipeline.ask(_wave(audio, sample_rate), query)

    def ask_many(self, audio, queries: list[str], *, sample_rate: int | None = None) -> list[Answer]:
        """Several queries about one recording; its audio is encoded once for all of them.
        ``audio`` and ``sample_rate`` as for :meth:`ask`."""
        return self.pipeline.ask_many(_wave(audio, sample_rate), queries)

    def describe(self) -> dict:
        return {"mode": self.mode, **self.sources, "config": self.config.to_dict()}

    def close(self) -> None:
        eng = self.pipeline.engine
        if eng is not None:
            eng.close()
