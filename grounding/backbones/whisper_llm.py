"""Qwen2-Audio and Audio Flamingo 3: a Whisper encoder + projector + Qwen2 LLM, through
transformers' own classes (``Qwen2AudioForConditionalGeneration``,
``AudioFlamingo3ForConditionalGeneration``), loaded with ``from_pretrained`` from a local path or
a hub id.

Both Whisper encoders accept exactly 3000 mel frames (30 s) and yield 750 embeddings (25 per
second). Long audio is cut into 30 s windows that are encoded separately (padded to 30 s, with an
attention mask), each window's output is trimmed to its true length and the windows are
concatenated in time order — so there is no 30 s cap and no frame is invented or dropped.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .base import GROUNDER_CONFIG, Backbone

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE


def check_wave(wave_16k) -> np.ndarray:
    """1-D float32 samples; empty or non-finite audio is refused with one clear error."""
    wave = np.asarray(wave_16k, dtype=np.float32).reshape(-1)
    if wave.size == 0:
        raise ValueError("empty waveform (0 samples)")
    if not np.all(np.isfinite(wave)):
        raise ValueError("waveform contains NaN or infinite samples")
    return wave


def whisper_frames(n_mel: int) -> int:
    """Encoder outputs for ``n_mel`` valid mel frames: conv stride 2, then average-pool stride 2."""
    return max(0, ((n_mel - 1) // 2 + 1 - 2) // 2 + 1)


class WhisperLLMBackbone(Backbone):
    """Shared code of the two Whisper + Qwen2 backbones; subclasses say how the tower is called."""

    model_class_name = ""
    frames_per_second = 25.0
    # how many 30 s windows go through the encoder at once (memory vs speed on long files)
    encode_batch = 4

    def __init__(self, model, tokenizer, feature_extractor, name_or_path: str = "") -> None:
        super().__init__()
        self.model, self.tokenizer, self.feature_extractor = model, tokenizer, feature_extractor
        self.name_or_path = name_or_path or getattr(model.config, "_name_or_path", "")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        stops = {tokenizer.eos_token_id}
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
            stops.add(im_end)
        self.stop_token_ids = sorted(i for i in stops if i is not None)

    # ---- loading -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str, *, dtype=None, device=None, **kw) -> "WhisperLLMBackbone":
        import torch
        import transformers

        model_cls = getattr(transformers, cls.model_class_name)
        if dtype is None:
            dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        model = model_cls.from_pretrained(str(name_or_path), dtype=dtype, **kw)
        if device is not None:
            model.to(device)
        model.eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(name_or_path))
        try:
            fe = transformers.AutoFeatureExtractor.from_pretrained(str(name_or_path))
        except (OSError, ValueError):
            # checkpoints without a preprocessor config: the 128-mel Whisper front end both use
            fe = transformers.WhisperFeatureExtractor(feature_size=128)
        bb = cls(model, tokenizer, fe, str(name_or_path))
        bb._read_settings(name_or_path)
        return bb

    # ---- modules -----------------------------------------------------------------------
    @property
    def audio_tower(self):
        return self.core.model.audio_tower

    @property
    def projector(self):
        return self.core.model.multi_modal_projector

    @property
    def decoder(self):
        return self.core.model.language_model

    @property
    def lm_head(self):
        return self.core.lm_head

    def encoder_modules(self) -> list:
        return [self.audio_tower, self.projector]

    # ---- audio -------------------------------------------------------------------------
    def _tower(self, feats, mel_mask):
        """[W, 128, 3000] features + [W, 3000] mask -> [W, 750, d_audio]."""
        raise NotImplementedError

    def audio_features(self, wave_16k):
        import torch

        wave = check_wave(wave_16k)
        chunks = [wave[i:i + WINDOW_SAMPLES] for i in range(0, wave.size, WINDOW_SAMPLES)]
        out = []
        tower_dtype = next(self.audio_tower.parameters()).dtype
        with torch.no_grad():
            for b in range(0, len(chunks), self.encode_batch):
                fe = self.feature_extractor(chunks[b:b + self.encode_batch], sampling_rate=SAMPLE_RATE,
                                            padding="max_length", return_attention_mask=True, return_tensors="pt")
                mel_mask = fe.attention_mask.to(self.device)
                hidden = self._tower(fe.input_features.to(self.device, tower_dtype), mel_mask)  # [W, 750, D]
                for w in range(hidden.shape[0]):
                    out.append(hidden[w, :whisper_frames(int(mel_mask[w].sum()))])
        # the conv arithmetic counts a frame for a partial last 40 ms; keep only whole frames, the
        # same count as floor(duration * fps) that prompts are laid out for (61.3 s -> 1532)
        feats = torch.cat(out, 0)[:int(np.floor(wave.size / SAMPLE_RATE * self.frames_per_second + 1e-6))]
        if feats.shape[0] == 0:
            raise ValueError(f"audio of {wave.size / SAMPLE_RATE:.3f} s is too short for one "
                             f"{1 / self.frames_per_second:.2f} s audio frame")
        return feats

    def project_audio(self, features, query: str | None = None):
        p = self.projector
        return p(features.to(next(p.parameters()).dtype)).to(self.dtype)

    # ---- saving ------------------------------------------------------------------------
    def save_pretrained(self, out_dir) -> None:
        out_dir = Path(out_dir)
        self.model.save_pretrained(str(out_dir))
        self.tokenizer.save_pretrained(str(out_dir))
        self.feature_extractor.save_pretrained(str(out_dir))
        self._write_grounder_config(out_dir)


class Qwen2AudioBackbone(WhisperLLMBackbone):
    kind = "qwen2-audio"
    model_class_name = "Qwen2AudioForConditionalGeneration"

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.audio_token_id = int(self.model.config.audio_token_index)

    def _tower(self, feats, mel_mask):
        import torch
        from transformers.masking_utils import create_bidirectional_mask

        # the tower ignores a 2-D mask; build the 4-D one as Qwen2AudioModel.forward does
        after_conv = (mel_mask.sum(-1) - 1) // 2 + 1
        n = feats.shape[-1] // 2
        mask2d = (torch.arange(n, device=feats.device)[None, :] < after_conv[:, None]).long()
        dummy = torch.zeros(feats.shape[0], n, 1, dtype=feats.dtype, device=feats.device)
        mask4d = create_bidirectional_mask(config=self.audio_tower.config, inputs_embeds=dummy, attention_mask=mask2d)
        return self.audio_tower(feats, attention_mask=mask4d).last_hidden_state


class AudioFlamingo3Backbone(WhisperLLMBackbone):
    kind = "audio-flamingo-3"
    model_class_name = "AudioFlamingo3ForConditionalGeneration"

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.audio_token_id = int(self.model.config.audio_token_id)

    def _tower(self, feats, mel_mask):
        return self.audio_tower(feats, input_features_mask=mel_mask).last_hidden_state


def read_grounder_config(path) -> dict | None:
    p = Path(path) / GROUNDER_CONFIG
    return json.loads(p.read_text()) if p.is_file() else None
