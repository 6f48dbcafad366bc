"""Audio encoders: waveform (16 kHz mono) -> dense frame features [B, T, width] and a global vector.

- :class:`LogMel` is the feature extractor (fixed, no weights saved: rebuilt from the config).
- :class:`CNNEncoder` is the small CPU default: a 2-D conv front end that pools frequency and time
  down to ``frames_per_second`` (25/s by default), then flattens frequency into ``width`` features.
- :class:`TCNEncoder` is a 1-D temporal conv net over mel bands, ~10x cheaper than the CNN.
- :class:`PatchEncoder` is an EAT/AudioMAE-style patch transformer with a [CLS] token, and an
  optional MAE reconstruction loss (Cacophony §III) for self-supervised pre-training.

Frame ``j`` of the output covers ``[j / fps, (j + 1) / fps)`` seconds of the input: the
spectrogram is cropped to ``len(wave) // hop_length`` frames so windows stitch without drift.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import AudioConfig


class LogMel(nn.Module):
    """[B, samples] -> log-mel [B, n_mels, frames], frames = samples // hop_length."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        import librosa

        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=20.0,
                                 fmax=cfg.sample_rate / 2)
        # buffers are rebuilt from the config, so they are not part of the checkpoint
        self.register_buffer("fb", torch.tensor(fb, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        n_frames = wave.shape[-1] // self.hop
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True,
                          return_complex=True).abs().pow(2)          # [B, F, n_frames + 1]
        mel = torch.matmul(self.fb, spec[..., :n_frames])             # [B, M, T]
        return torch.log(mel + 1e-6)


class InputNorm(nn.Module):
    """Fixed log-mel scaling plus a learned per-band affine. Deliberately not batch- or
    instance-statistics: a window of near-silence must stay near-silent, whatever else is in the
    batch or the window (instance norm would amplify its noise floor into "events")."""

    def __init__(self, n_mels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_mels, 1))
        self.bias = nn.Parameter(torch.zeros(n_mels, 1))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        # log(1e-6) = -13.8 for digital silence; speech/effects sit around -6..+4
        return ((mel + 5.0) / 4.0) * self.weight + self.bias


def _time_pools(time_pool: int, n_blocks: int) -> list[int]:
    """Spread a power-of-two time pooling over the first blocks, 2 per block."""
    k = int(round(math.log2(time_pool)))
    if 2 ** k != time_pool or k > n_blocks:
        raise ValueError(f"audio.time_pool={time_pool}: must be a power of two <= 2**{n_blocks}")
    return [2 if i < k else 1 for i in range(n_blocks)]


class CNNEncoder(nn.Module):
    """Log-mel -> conv blocks (3x3, BN, ReLU; pool 2 in frequency, 2 in time while needed)."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.input_norm = InputNorm(cfg.n_mels)
        blocks, c_in, f = [], 1, cfg.n_mels
        norm = (lambda c: nn.BatchNorm2d(c)) if cfg.norm == "batch" else (lambda c: nn.Identity())
        for c, tp in zip(cfg.channels, _time_pools(cfg.time_pool, len(cfg.channels))):
            fp = 2 if f >= 4 else 1
            blocks.append(nn.Sequential(
                nn.Conv2d(c_in, c, 3, padding=1), norm(c), nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=1), norm(c), nn.ReLU(inplace=True),
                nn.AvgPool2d((fp, tp)) if (fp, tp) != (1, 1) else nn.Identity()))
            c_in, f = c, f // fp
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Linear(c_in * f, cfg.width)
        self.time_pool = cfg.time_pool

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        T = mel.shape[-1] // self.time_pool
        x = self.input_norm(mel[..., :T * self.time_pool]).unsqueeze(1)   # [B, 1, M, T0]
        x = self.blocks(x)                                                  # [B, C, F', T]
        x = x.flatten(1, 2).transpose(1, 2)                                 # [B, T, C*F']
        return F.gelu(self.proj(x))                                         # [B, T, width]


class TCNEncoder(nn.Module):
    """Temporal conv net: mel bands as channels, 1-D convolutions over time (the cheapest
    encoder; ~10x fewer multiply-adds than the 2-D CNN, which is what CPU training can afford).

    conv(k=5) over the input bands, pooled by ``time_pool``, then residual conv(k=3) blocks with
    dilation 1, 2, 4, ... (receptive field grows to a second or more) of ``channels[i]`` each.
    """

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.input_norm = InputNorm(cfg.n_mels)
        c0 = cfg.channels[0]
        norm = (lambda c: nn.BatchNorm1d(c)) if cfg.norm == "batch" else (lambda c: nn.Identity())
        self.stem = nn.Sequential(nn.Conv1d(cfg.n_mels, c0, 5, padding=2), norm(c0), nn.ReLU(inplace=True),
                                  nn.AvgPool1d(cfg.time_pool) if cfg.time_pool > 1 else nn.Identity())
        self.blocks = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        c_in = c0
        for i, c in enumerate(cfg.channels[1:] or (c0,)):
            d = 2 ** i
            self.blocks.append(nn.Sequential(
                nn.Conv1d(c_in, c, 3, padding=d, dilation=d), norm(c), nn.ReLU(inplace=True),
                nn.Conv1d(c, c, 3, padding=1), norm(c)))
            self.shortcuts.append(nn.Identity() if c == c_in else nn.Conv1d(c_in, c, 1))
            c_in = c
        self.proj = nn.Linear(c_in, cfg.width)
        self.time_pool = cfg.time_pool

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        T = mel.shape[-1] // self.time_pool
        x = self.stem(self.input_norm(mel[..., :T * self.time_pool]))        # [B, C, T]
        for blk, sc in zip(self.blocks, self.shortcuts):
            x = F.relu(blk(x) + sc(x))
        return F.gelu(self.proj(x.transpose(1, 2)))                          # [B, T, width]


class PatchEncoder(nn.Module):
    """EAT/AudioMAE-style: (patch_freq x time_pool) mel patches -> transformer with [CLS].

    Returns dense features pooled over frequency patches. ``mae_loss`` masks ``mask_ratio`` of the
    patches, encodes the rest and reconstructs the masked ones with a 1-layer decoder.
    """

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.cfg = cfg
        self.input_norm = InputNorm(cfg.n_mels)
        self.n_fp = cfg.n_mels // cfg.patch_freq
        self.patch_dim = cfg.patch_freq * cfg.time_pool
        self.embed = nn.Linear(self.patch_dim, cfg.width)
        self.freq_pos = nn.Parameter(torch.zeros(1, self.n_fp, 1, cfg.width))
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.width))
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 2 * cfg.width, dropout=0.0,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        if cfg.mask_ratio > 0:
            dec = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 2 * cfg.width, dropout=0.0,
                                             batch_first=True, norm_first=True)
            self.decoder = nn.TransformerEncoder(dec, 1, enable_nested_tensor=False)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
            self.recon = nn.Linear(cfg.width, self.patch_dim)
        nn.init.normal_(self.freq_pos, std=0.02)
        nn.init.normal_(self.cls, std=0.02)

    def _time_pos(self, T: int, device) -> torch.Tensor:
        d = self.cfg.width
        pos = torch.arange(T, device=device, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / d))
        pe = torch.zeros(T, d, device=device)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        return pe

    def _patches(self, mel: torch.Tensor) -> torch.Tensor:
        B, M, T0 = mel.shape
        tp, pf = self.cfg.time_pool, self.cfg.patch_freq
        T = T0 // tp
        x = self.input_norm(mel[..., :T * tp])
        x = x.reshape(B, self.n_fp, pf, T, tp).permute(0, 1, 3, 2, 4)   # [B, Fp, T, pf, tp]
        return x.reshape(B, self.n_fp, T, self.patch_dim)

    def _tokens(self, patches: torch.Tensor) -> torch.Tensor:
        B, Fp, T, _ = patches.shape
        tok = self.embed(patches) + self.freq_pos + self._time_pos(T, patches.device)[None, None]
        return tok.reshape(B, Fp * T, -1)

    def forward_with_global(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = self._patches(mel)
        B, Fp, T, _ = patches.shape
        tok = torch.cat([self.cls.expand(B, -1, -1), self._tokens(patches)], dim=1)
        out = self.norm(self.encoder(tok))
        dense = out[:, 1:].reshape(B, Fp, T, -1).mean(dim=1)              # pool over frequency
        return out[:, 0], dense

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.forward_with_global(mel)[1]

    def mae_loss(self, mel: torch.Tensor) -> torch.Tensor:
        """Masked-patch reconstruction MSE (normalised per patch), on masked patches only."""
        if self.cfg.mask_ratio <= 0:
            raise ValueError("audio.mask_ratio must be > 0 to compute an MAE loss")
        grid = self._patches(mel)                                          # [B, Fp, T, P]
        patches = grid.flatten(1, 2)                                       # [B, N, P]
        B, N, P = patches.shape
        tok = self._tokens(grid)
        n_keep = max(1, int(N * (1 - self.cfg.mask_ratio)))
        order = torch.rand(B, N, device=mel.device).argsort(dim=1)
        keep, masked = order[:, :n_keep], order[:, n_keep:]
        vis = torch.gather(tok, 1, keep[..., None].expand(-1, -1, tok.shape[-1]))
        enc = self.norm(self.encoder(vis))
        full = self.mask_token.expand(B, N, -1).clone()
        full.scatter_(1, keep[..., None].expand(-1, -1, enc.shape[-1]), enc)
        pos = self._tokens(torch.zeros_like(grid)) - self.embed.bias      # positions only
        rec = self.recon(self.decoder(full + pos))
        target = (patches - patches.mean(-1, keepdim=True)) / (patches.std(-1, keepdim=True) + 1e-5)
        idx = masked[..., None].expand(-1, -1, P)
        return F.mse_loss(torch.gather(rec, 1, idx), torch.gather(target, 1, idx))


class AttentionPool(nn.Module):
    """Learned-query attention pooling over frames (Cacophony's pooling) -> [B, width]."""

    def __init__(self, width: int, heads: int = 4):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.query.expand(x.shape[0], -1, -1)
        out, _ = self.attn(q, x, x, key_padding_mask=None if mask is None else ~mask)
        return out[:, 0]


def build_audio_encoder(cfg: AudioConfig) -> nn.Module:
    if cfg.kind == "cnn":
        return CNNEncoder(cfg)
    if cfg.kind == "patch":
        return PatchEncoder(cfg)
    if cfg.kind == "tcn":
        return TCNEncoder(cfg)
    raise ValueError(f"audio.kind={cfg.kind!r}: no encoder of that kind")
