"""The scorer network (FineLAP's decoupled adapter + FLAM's optional per-text calibration).

    wave [B, S] --LogMel--> [B, M, T0] --encoder--> dense features [B, T, width]  (pre-projection)
        global: attention pool (CNN) or [CLS] (patch) -> 2-layer projector -> G [B, D]
        dense:  linear -> conv positional mixing -> 2 transformer layers (or BiGRU / none) -> F [B, T, D]
    phrase --text encoder--> [N, E] -> 2-layer projector -> P [N, D]
    all L2-normalised; frame logit = t' * <F_l, P> + b'   (FLAM: alpha(P) * <F_l, P> + beta(P))

Towers are ``model.audio`` and ``model.text``. ``save_pretrained``/``from_pretrained`` write and
read ``config.json`` + ``model.safetensors`` (a frozen, pip-installed text encoder is not stored).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .audio_encoders import AttentionPool, LogMel, build_audio_encoder
from .config import ModelConfig, TrainConfig, dump_json, read_checkpoint_config
from .text_encoders import TextEncoder

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


class DenseHead(nn.Module):
    """FineLAP's dense projector after frequency pooling: linear, then temporal modelling."""

    def __init__(self, width: int, dim: int, kind: str, layers: int, heads: int):
        super().__init__()
        self.kind = kind
        self.proj = nn.Linear(width, dim)
        if kind == "transformer":
            # depthwise conv as relative position signal: translation-invariant, so windows stitch
            self.pos = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
            layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.1, batch_first=True,
                                               norm_first=True, activation="gelu")
            self.temporal = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False) if layers else None
        elif kind == "bigru":
            self.temporal = nn.GRU(dim, dim // 2, num_layers=max(layers, 1), batch_first=True,
                                   bidirectional=True)
        else:
            self.temporal = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        if self.kind == "transformer":
            x = x + self.pos(x.transpose(1, 2)).transpose(1, 2)
            if self.temporal is not None:
                x = self.temporal(x)
        elif self.kind == "bigru":
            x = x + self.temporal(x)[0]
        return x


class AudioTower(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        a = cfg.audio
        self.cfg = a
        self.features = LogMel(a)
        self.encoder = build_audio_encoder(a)
        self.pool = AttentionPool(a.width) if a.kind != "patch" else None
        self.global_proj = _mlp(a.width, a.width, cfg.embed_dim)
        self.dense_proj = DenseHead(a.width, cfg.embed_dim, cfg.dense_head, cfg.dense_layers, cfg.dense_heads)

    @property
    def frames_per_second(self) -> float:
        return self.cfg.frames_per_second

    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        return self.features(wave)

    def features_from_mel(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-projection features: (global [B, width], dense [B, T, width])."""
        if self.pool is None:
            return self.encoder.forward_with_global(mel)
        dense = self.encoder(mel)
        return self.pool(dense), dense

    def forward_mel(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g, d = self.features_from_mel(mel)
        return (F.normalize(self.global_proj(g), dim=-1),
                F.normalize(self.dense_proj(d), dim=-1))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_mel(self.mel(wave))


class TextTower(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.encoder = TextEncoder(cfg.text)
        e = self.encoder.dim
        self.proj = _mlp(e, e, cfg.embed_dim)
        self.flam = cfg.flam
        if cfg.flam:
            # FLAM §3.2: alpha(y) > 0 (trained by the frame loss), beta(y) (trained by the prior
            # loss only). Initialised to the global t, b so both variants start alike.
            self.scale_mlp = _mlp(e, 128, 1)
            self.bias_mlp = _mlp(e, 128, 1)
            for m, v in ((self.scale_mlp, math.log(cfg.init_logit_scale)), (self.bias_mlp, cfg.init_logit_bias)):
                nn.init.zeros_(m[2].weight)
                nn.init.constant_(m[2].bias, v)

    def features(self, phrases: list[str]) -> torch.Tensor:
        return self.encoder(phrases)

    def forward(self, phrases: list[str]) -> dict:
        """{"emb": [N, D] normalised, and with FLAM "scale" [N], "bias" [N]}."""
        f = self.features(phrases)
        out = {"emb": F.normalize(self.proj(f), dim=-1)}
        if self.flam:
            out["scale"] = self.scale_mlp(f).squeeze(-1).clamp(max=math.log(100.0)).exp()
            out["bias"] = self.bias_mlp(f).squeeze(-1)
        return out


class ScorerModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.audio = AudioTower(cfg)
        self.text = TextTower(cfg)
        t, b = math.log(cfg.init_logit_scale), cfg.init_logit_bias
        # separate (t, b) for the clip and frame objectives, as FineLAP
        self.clip_logit_scale = nn.Parameter(torch.tensor(t))
        self.clip_logit_bias = nn.Parameter(torch.tensor(b))
        self.frame_logit_scale = nn.Parameter(torch.tensor(t))
        self.frame_logit_bias = nn.Parameter(torch.tensor(b))

    @property
    def frames_per_second(self) -> float:
        return self.audio.frames_per_second

    def encode_audio(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, samples] at 16 kHz -> (global [B, D], dense [B, T, D]), both L2-normalised."""
        return self.audio(wave)

    def audio_features(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-projection features (global [B, width], dense [B, T, width]) for downstream models."""
        return self.audio.features_from_mel(self.audio.mel(wave))

    def encode_text(self, phrases: list[str]) -> dict:
        return self.text(phrases)

    def frame_logits(self, dense: torch.Tensor, text: dict, index: torch.Tensor | None = None) -> torch.Tensor:
        """dense [B, T, D], text embeddings [N, D] -> logits [B, N, T].

        With ``index`` [B, K] each clip is scored only against its own K phrases -> [B, K, T].
        """
        emb = text["emb"]
        if index is None:
            sim = torch.einsum("btd,nd->bnt", dense, emb)
            scale = text["scale"][None, :, None] if "scale" in text else self.frame_logit_scale.exp()
            bias = text["bias"].detach()[None, :, None] if "bias" in text else self.frame_logit_bias
        else:
            sim = torch.einsum("btd,bkd->bkt", dense, emb[index])
            scale = text["scale"][index][..., None] if "scale" in text else self.frame_logit_scale.exp()
            bias = text["bias"].detach()[index][..., None] if "bias" in text else self.frame_logit_bias
        return scale * sim + bias

    def frame_probs(self, logits: torch.Tensor, text: dict, index=None, unbiased: bool = True) -> torch.Tensor:
        """sigmoid(logit); with FLAM and ``unbiased``: p / (p + sigmoid(beta)) (FLAM Eq. 6-7:
        0.5 exactly where the posterior equals the phrase's training prior)."""
        p = torch.sigmoid(logits)
        if unbiased and "bias" in text:
            prior = torch.sigmoid(text["bias"] if index is None else text["bias"][index])
            prior = prior[None, :, None] if index is None else prior[..., None]
            p = p / (p + prior)
        return p

    def clip_logits(self, global_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return self.clip_logit_scale.exp() * global_emb @ text_emb.T + self.clip_logit_bias

    # ------------------------------------------------------------------ save / load
    def _stored_state(self) -> dict:
        state = self.state_dict()
        if self.config.text.freeze:
            state = {k: v for k, v in state.items() if not k.startswith("text.encoder.")}
        return state

    def save_pretrained(self, path: str | Path, run_config: TrainConfig | None = None,
                        half: bool = False, extra: dict | None = None) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: (v.half() if half and v.is_floating_point() else v).contiguous().clone()
                 for k, v in self._stored_state().items()}
        save_file(state, str(path / WEIGHTS_NAME), metadata={"format": "pt"})
        meta = {"library": "earmark.contrastive", "format_version": 1, "model": self.config.to_dict(),
                "run": run_config.to_dict() if run_config is not None else None,
                "frames_per_second": self.frames_per_second}
        if extra:
            meta.update(extra)
        dump_json(meta, path / CONFIG_NAME)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, revision: str | None = None) -> "ScorerModel":
        """Load a checkpoint directory, a shipped scorer's name or a Hugging Face Hub id (as
        ``Scorer.from_pretrained``); a scorer on the pretrained YAMNet trunk (``library``
        ``earmark.contrastive.yamnet`` in its config) loads as :class:`YamnetScorerModel`."""
        from safetensors.torch import load_file

        from .scorer import resolve_scorer_dir
        from .yamnet_scorer import YamnetScorerModel, is_yamnet_checkpoint

        path = resolve_scorer_dir(path, revision=revision)
        if is_yamnet_checkpoint(path):
            return YamnetScorerModel.from_pretrained(path)
        cfg_path, w_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise FileNotFoundError(f"{path}: not a scorer checkpoint (missing {p.name})")
        _, cfg = read_checkpoint_config(cfg_path, ModelConfig.from_dict)
        model = cls(cfg)
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(w_path)).items()}
        expected = set(model._stored_state())
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or extra:
            raise ValueError(f"{w_path}: weights do not match the config "
                             f"(missing {missing[:5]}, unexpected {extra[:5]})")
        model.load_state_dict(state, strict=False)
        model.eval()
        return model


def create_model(config: ModelConfig | dict | None = None) -> tuple[ScorerModel, LogMel]:
    """The factory: (model, feature extractor). The extractor is ``model.audio.features``."""
    if config is None:
        config = ModelConfig()
    elif isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    model = ScorerModel(config)
    return model, model.audio.features
