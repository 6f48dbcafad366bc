"""Scorers on pretrained hearing: YAMNet's AudioSet knowledge, zero-shot or with a trained head.

    zero-shot  phrase --MiniLM--> cosine to the 521 AudioSet names --softmax(/T), top k--> w [521]
               frame prob p(t) = sum_c w_c sigmoid(yamnet logit_c(t))
    trained    the zero-shot logit as a fixed residual, plus FineLAP's decoupled heads on the frozen
               YAMNet embeddings (and optionally a fine 40 ms CNN stream for boundaries):
               frame logit = logit(p_zs(t)) + t' <F_t, P> + b'

Both expose the interface ``contrastive.scorer.Scorer`` and the grounder use (``encode_audio``,
``audio_features``, ``encode_text``, ``frame_logits``, ``frame_probs``, ``frames_per_second``) and
load through ``ScorerModel.from_pretrained`` (it dispatches on ``library`` in ``config.json``).
The dense "embedding" of this model is not L2-normalised (``normalize_dense = False``): it carries
YAMNet's class logits (and embeddings) at 25 frames per second, linearly interpolated from the
patch centres.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TextConfig, _choice, _from_dict, _positive, dump_json, read_checkpoint_config
from .yamnet import N_CLASSES, N_MELS, YamNet

LIBRARY = "earmark.contrastive.yamnet"
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
KINDS = ("zeroshot", "trained")


@dataclass
class _AudioInfo:
    """What ``Scorer`` reads of ``model.config.audio``."""
    sample_rate: int = 16000
    frames_per_second: float = 25.0


@dataclass
class YamnetScorerConfig:
    kind: str = "zeroshot"
    hop_seconds: float = 0.16      # YAMNet patch hop (patch centres every hop seconds)
    fps: float = 25.0              # output frame rate (the scorer's and the grounder's)
    temperature: float = 0.03      # softmax over cosine similarities to the 521 class names
    top_classes: int = 5           # classes a phrase is matched to (the rest get weight 0)
    text: TextConfig = field(default_factory=TextConfig)
    # trained head
    embed_dim: int = 128
    hidden: int = 256
    context: int = 5               # temporal conv kernel (frames) in the dense head
    init_logit_scale: float = 10.0
    init_logit_bias: float = -5.0
    # a fine 40 ms stream beside YAMNet's 0.96 s patches: YAMNet's own log-mel averaged to 25
    # frames/s through a small trained conv, concatenated before the dense projection (boundaries)
    fine_stream: bool = False
    fine_channels: int = 64
    dropout: float = 0.0           # on the trunk embedding and the head's hidden layer (training only)
    # text-side adaptation of the zero-shot path: a learned shift of each phrase's class weights
    # (softmax over all 521 classes then) and a per-phrase scale / bias of its zero-shot logit;
    # ``embedding_head`` False leaves the AudioSet classifier as the only audio evidence
    class_adapter: bool = False
    embedding_head: bool = True
    # what was learned applies to a phrase in proportion to its MiniLM similarity to the phrases
    # trained on (0 at or below gate_low, 1 at or above gate_high): a phrase unlike any of them is
    # scored zero-shot, so training on ~70 classes cannot spoil the other 450 (empty: always 1)
    gate_vocab: list = field(default_factory=list)
    gate_low: float = 0.5
    gate_high: float = 0.8

    def __post_init__(self):
        _choice("kind", self.kind, KINDS)
        self.text = _from_dict(TextConfig, self.text, "text")
        for n in ("hop_seconds", "fps", "temperature", "top_classes", "embed_dim", "hidden", "context"):
            _positive(n, getattr(self, n))
        if not 1 <= int(self.top_classes) <= N_CLASSES:
            raise ValueError(f"top_classes={self.top_classes}: must be in [1, {N_CLASSES}]")
        if not 0.01 <= self.hop_seconds <= 0.96:
            raise ValueError(f"hop_seconds={self.hop_seconds}: must be in [0.01, 0.96]")

    @property
    def audio(self) -> _AudioInfo:
        return _AudioInfo(16000, float(self.fps))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "YamnetScorerConfig":
        return _from_dict(cls, d, "model")


def interpolate_patches(x: torch.Tensor, n_frames: int, hop: float, fps: float) -> torch.Tensor:
    """[B, P, C] values at patch centres i * hop -> [B, n_frames, C] at frame centres (j + .5) / fps
    (linear; held constant beyond the first and last patch)."""
    P = x.shape[1]
    pos = ((torch.arange(n_frames, dtype=torch.float32) + 0.5) / fps / hop).clamp(0, P - 1)
    i0 = pos.floor().long().clamp(max=P - 1)
    i1 = (i0 + 1).clamp(max=P - 1)
    f = (pos - i0.float())[None, :, None]
    return x[:, i0] * (1 - f) + x[:, i1] * f


def fine_mel(mel: torch.Tensor, n_frames: int, fps: float) -> torch.Tensor:
    """YAMNet's log-mel [B, T100, 64] (100 frames/s) averaged over each output frame -> [B, n_frames, 64]."""
    k = int(round(100 / fps))
    need = n_frames * k
    if mel.shape[1] < need:          # the uncentred STFT is 1-2 frames short at the end
        mel = torch.cat([mel, mel[:, -1:].expand(-1, need - mel.shape[1], -1)], 1)
    return mel[:, :need].reshape(mel.shape[0], n_frames, k, -1).mean(2)


class YamnetScorerModel(nn.Module):
    normalize_dense = False        # Scorer: stitch windows without L2-normalising

    def __init__(self, cfg: YamnetScorerConfig, trunk: YamNet | None = None):
        super().__init__()
        from .text_encoders import TextEncoder

        self.config = cfg
        self.trunk = trunk if trunk is not None else YamNet.from_pretrained()
        self.text_encoder = TextEncoder(cfg.text)
        self._class_emb = None
        if cfg.kind == "trained" and cfg.class_adapter:
            e = self.text_encoder.dim
            self.adapter = nn.Sequential(nn.Linear(e, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, N_CLASSES))
            self.zs_affine = nn.Sequential(nn.Linear(e, 64), nn.GELU(), nn.Linear(64, 2))
            for m in (self.adapter[2], self.zs_affine[2]):    # start as the zero-shot scorer
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)
        if cfg.kind == "trained" and cfg.embedding_head:
            e = self.text_encoder.dim
            self.audio_head = nn.Sequential(nn.Linear(1024, cfg.hidden), nn.GELU())
            self.temporal = nn.Conv1d(cfg.hidden, cfg.hidden, cfg.context, padding=cfg.context // 2)
            fine = cfg.fine_channels if cfg.fine_stream else 0
            if cfg.fine_stream:
                self.fine = nn.Sequential(
                    nn.Conv1d(N_MELS, fine, 5, padding=2), nn.GELU(), nn.Conv1d(fine, fine, 5, padding=2), nn.GELU())
            self.dense_proj = nn.Linear(cfg.hidden + fine, cfg.embed_dim)
            self.global_proj = nn.Sequential(nn.Linear(1024, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.embed_dim))
            self.text_proj = nn.Sequential(nn.Linear(e, e), nn.GELU(), nn.Linear(e, cfg.embed_dim))
            import math

            self.frame_logit_scale = nn.Parameter(torch.tensor(math.log(cfg.init_logit_scale)))
            self.frame_logit_bias = nn.Parameter(torch.tensor(float(cfg.init_logit_bias)))
            self.clip_logit_scale = nn.Parameter(torch.tensor(math.log(cfg.init_logit_scale)))
            self.clip_logit_bias = nn.Parameter(torch.tensor(float(cfg.init_logit_bias)))

    @property
    def frames_per_second(self) -> float:
        return float(self.config.fps)

    # ------------------------------------------------------------------ audio
    def n_frames(self, n_samples: int) -> int:
        return max(1, int(n_samples // round(16000 / self.config.fps)))

    def trunk_frames(self, wave: torch.Tensor, mel: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S] -> (embeddings [B, T, 1024], logits [B, T, 521]) at ``fps``, T = S // (sr / fps)
        (``mel``: the trunk's log-mel of ``wave`` when the caller already has it)."""
        if wave.dim() == 1:
            wave = wave[None]
        with torch.no_grad():
            emb, logits = self.trunk.frames(wave.float(), self.config.hop_seconds, mel=mel)
        x = interpolate_patches(torch.cat([logits, emb], -1), self.n_frames(wave.shape[-1]),
                                self.config.hop_seconds, self.config.fps)
        return x[..., N_CLASSES:], x[..., :N_CLASSES]

    def fine_frames(self, wave: torch.Tensor, mel: torch.Tensor | None = None) -> torch.Tensor:
        """[B, S] -> YAMNet's log-mel averaged to ``fps`` [B, T, 64] (the fine stream's input)."""
        if mel is None:
            with torch.no_grad():
                mel = self.trunk.logmel((wave if wave.dim() == 2 else wave[None]).float())
        return fine_mel(mel, self.n_frames(wave.shape[-1]), self.config.fps)

    def encode_audio(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S] -> (global [B, C], dense [B, T, C]): YAMNet's frame logits (C = 521), then for
        the trained kind its embeddings (+1024) and the fine stream's log-mel (+64): what
        ``frame_logits`` reads."""
        _, dense = self.features_and_dense(wave)
        return dense.max(dim=1).values, dense

    @property
    def joint_dim(self) -> int:
        """Width of ``encode_audio``'s dense vector (what ``frame_logits`` reads)."""
        if self.config.kind == "zeroshot":
            return N_CLASSES
        return N_CLASSES + 1024 + (N_MELS if self.config.fine_stream else 0)

    def features_and_dense(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One trunk pass for the grounder: (frame embeddings [B, T, 1024], dense [B, T, joint_dim])."""
        fine = self.config.kind == "trained" and self.config.fine_stream
        mel = None
        if fine:         # one log-mel feeds both the trunk's patches and the fine stream
            with torch.no_grad():
                mel = self.trunk.logmel((wave if wave.dim() == 2 else wave[None]).float())
        emb, logits = self.trunk_frames(wave, mel)
        parts = [logits] if self.config.kind == "zeroshot" else [logits, emb]
        if fine:
            parts.append(self.fine_frames(wave, mel))
        return emb, torch.cat(parts, -1)

    def audio_features(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For downstream models (the grounder): (mean embedding [B, 1024], frame embeddings
        [B, T, 1024] at ``fps``)."""
        emb, _ = self.trunk_frames(wave)
        return emb.mean(1), emb

    # ------------------------------------------------------------------ text
    def class_embeddings(self) -> torch.Tensor:
        if self._class_emb is None:
            self._class_emb = F.normalize(self.text_encoder(self.trunk.class_names), dim=-1)
        return self._class_emb

    def gate(self, phrases: list[str]) -> torch.Tensor:
        """[N] in [0, 1]: how much of the trained correction applies to each phrase."""
        if not self.config.gate_vocab:
            return torch.ones(len(phrases))
        if getattr(self, "_vocab_emb", None) is None:
            self._vocab_emb = F.normalize(self.text_encoder(list(self.config.gate_vocab)), dim=-1)
        sim = (F.normalize(self.text_encoder(phrases), dim=-1) @ self._vocab_emb.T).amax(-1)
        lo, hi = self.config.gate_low, self.config.gate_high
        return ((sim - lo) / max(hi - lo, 1e-6)).clamp(0, 1)

    def class_weights(self, phrases: list[str], gate: torch.Tensor | None = None) -> torch.Tensor:
        """[N, 521]: each phrase's softmax weights over its ``top_classes`` nearest class names
        (with the class adapter: over all classes, similarities shifted by the adapter)."""
        feats = self.text_encoder(phrases)
        q = F.normalize(feats, dim=-1)
        sim = q @ self.class_embeddings().T
        if getattr(self, "adapter", None) is not None:
            g = torch.ones(len(phrases)) if gate is None else gate
            return torch.softmax(sim / self.config.temperature + g[:, None] * self.adapter(feats), dim=-1)
        k = int(self.config.top_classes)
        top = sim.topk(k, dim=-1)
        w = torch.zeros_like(sim)
        w.scatter_(1, top.indices, torch.softmax(top.values / self.config.temperature, dim=-1))
        return w

    def encode_text(self, phrases: list[str]) -> dict:
        g = self.gate(phrases)
        out = {"weights": self.class_weights(phrases, g)}
        if getattr(self, "zs_affine", None) is not None:
            a, b = self.zs_affine(self.text_encoder(phrases)).unbind(-1)
            out["zs_scale"], out["zs_bias"] = (g * a).exp(), g * b
        if getattr(self, "text_proj", None) is not None:
            out["emb"] = F.normalize(self.text_proj(self.text_encoder(phrases)), dim=-1)
            out["gate"] = g
        return out

    def explain(self, phrase: str, k: int = 3) -> list[tuple[str, float]]:
        """The AudioSet classes a phrase is heard as, with their weights (for users and tests)."""
        w = self.class_weights([phrase])[0]
        top = w.topk(k)
        return [(self.trunk.class_names[i], float(v)) for v, i in zip(top.values, top.indices)]

    # ------------------------------------------------------------------ scores
    def prepare(self, dense: torch.Tensor) -> dict:
        """What ``frame_logits`` computes from the audio alone, once per recording: the class
        probabilities and the dense head's frame embeddings (``Scorer`` keeps it beside the
        embedding, so 20 phrases x 3 questions on an hour of audio do not redo it 60 times)."""
        prep = {"probs": torch.sigmoid(dense[..., :N_CLASSES])}
        if self.config.kind == "trained" and self.config.embedding_head:
            prep["frames"] = self.head_dense(dense)
        return prep

    def zeroshot_logits(self, dense: torch.Tensor, text: dict, prepared: dict | None = None) -> torch.Tensor:
        """dense [B, T, >=521], weights [N, 521] -> logit of sum_c w_c sigmoid(l_c) [B, N, T]."""
        probs = prepared["probs"] if prepared else torch.sigmoid(dense[..., :N_CLASSES])
        p = torch.einsum("btc,nc->bnt", probs, text["weights"])
        p = p.clamp(1e-6, 1 - 1e-6)
        return torch.log(p) - torch.log1p(-p)

    def head_dense(self, dense: torch.Tensor) -> torch.Tensor:
        """dense [B, T, 521 + 1024 (+ 64)] -> normalised frame embeddings [B, T, D]."""
        p = self.config.dropout if self.training else 0.0
        h = F.dropout(self.audio_head(F.dropout(dense[..., N_CLASSES:N_CLASSES + 1024], p)), p)
        h = h + self.temporal(h.transpose(1, 2)).transpose(1, 2)
        if self.config.fine_stream:
            # fixed scaling of YAMNet's log-mel (log(0.001) = -6.9 is silence), no batch statistics
            mel = (dense[..., N_CLASSES + 1024:] + 4.0) / 3.0
            h = torch.cat([h, self.fine(mel.transpose(1, 2)).transpose(1, 2)], -1)
        return F.normalize(self.dense_proj(h), dim=-1)

    def frame_logits(self, dense: torch.Tensor, text: dict, index: torch.Tensor | None = None,
                     prepared: dict | None = None) -> torch.Tensor:
        """dense [B, T, C] -> logits [B, N, T] (or [B, K, T] against each clip's own phrases);
        ``prepared``: ``self.prepare(dense)``, computed once per recording."""
        if index is not None:
            # score all phrases, then pick each clip's own: N is small during training
            full = self.frame_logits(dense, text, prepared=prepared)
            return torch.gather(full, 1, index[..., None].expand(-1, -1, full.shape[-1]))
        z = self.zeroshot_logits(dense, text, prepared)
        if "zs_scale" in text:
            z = text["zs_scale"][None, :, None] * z + text["zs_bias"][None, :, None]
        if "emb" not in text:
            return z
        f = prepared["frames"] if prepared else self.head_dense(dense)
        sim = torch.einsum("btd,nd->bnt", f, text["emb"])
        head = self.frame_logit_scale.exp() * sim + self.frame_logit_bias
        return z + text["gate"][None, :, None] * head

    def frame_probs(self, logits: torch.Tensor, text: dict, index=None, unbiased: bool = True) -> torch.Tensor:
        return torch.sigmoid(logits)

    # ------------------------------------------------------------------ save / load
    def _stored_state(self) -> dict:
        return {k: v for k, v in self.state_dict().items()
                if not k.startswith(("trunk.", "text_encoder."))}

    def save_pretrained(self, path: str | Path, run_config: dict | None = None, extra: dict | None = None) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = self._stored_state()
        if state:
            from safetensors.torch import save_file

            save_file({k: v.contiguous().clone() for k, v in state.items()}, str(path / WEIGHTS_NAME),
                      metadata={"format": "pt"})
        meta = {"library": LIBRARY, "format_version": 1, "model": self.config.to_dict(),
                "run": run_config, "frames_per_second": self.frames_per_second}
        if extra:
            meta.update(extra)
        dump_json(meta, path / CONFIG_NAME)

    @classmethod
    def from_pretrained(cls, path: str | Path, trunk: YamNet | None = None) -> "YamnetScorerModel":
        path = Path(path)
        cfg_path = path / CONFIG_NAME
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{path}: not a scorer checkpoint (missing {CONFIG_NAME})")
        _, cfg = read_checkpoint_config(cfg_path, YamnetScorerConfig.from_dict)
        model = cls(cfg, trunk)
        expected = model._stored_state()
        if expected:
            from safetensors.torch import load_file

            w = path / WEIGHTS_NAME
            if not w.is_file():
                raise FileNotFoundError(f"{path}: a trained YAMNet scorer needs {WEIGHTS_NAME}")
            state = {k: v.float() for k, v in load_file(str(w)).items()}
            missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
            if missing or extra:
                raise ValueError(f"{w}: weights do not match the config (missing {missing[:5]}, unexpected {extra[:5]})")
            model.load_state_dict(state, strict=False)
        return model.eval()


def is_yamnet_checkpoint(path: str | Path) -> bool:
    p = Path(path) / CONFIG_NAME
    try:
        return json.loads(p.read_text()).get("library") == LIBRARY
    except (OSError, json.JSONDecodeError, AttributeError):
        return False
