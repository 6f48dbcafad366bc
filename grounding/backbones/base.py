"""The one small interface every grounder backbone offers.

A backbone turns 16 kHz mono audio into a sequence of embeddings in the language model's input
space (``frames_per_second`` of them per second, in time order), turns token ids into embeddings,
runs the decoder on a sequence of embeddings, and generates greedily. Everything else in
``grounding/`` — interleaving, instruction data, training, the engines — is written against this
interface only, so Qwen2-Audio, Audio Flamingo 3 and the embedded default are interchangeable.

Shapes: ``H`` = LLM hidden size, ``T`` = audio frames, ``L`` = sequence length, ``B`` = batch.
"""
from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any

GROUNDER_CONFIG = "grounder_config.json"


class Backbone(abc.ABC):
    """An audio LLM seen as: audio -> [T, H] embeddings, ids -> [L, H], embeddings -> answer ids.

    Attributes every backbone sets:
      kind               "qwen2-audio" | "audio-flamingo-3" | "embedded" | "embedded-lm"
      name_or_path       where it was loaded from (recorded as the base id of adapters)
      model              the torch module holding every weight (what peft wraps / DeepSpeed trains)
      tokenizer          a transformers tokenizer (pad and eos set)
      frames_per_second  audio embeddings per second of audio (25 for Whisper encoders)
      audio_token_id     placeholder id whose embedding is replaced by audio frames, or None
      stop_token_ids     ids that end an answer (eos, ``<|im_end|>``)
    """

    kind: str = ""
    name_or_path: str = ""
    frames_per_second: float = 25.0
    audio_token_id: int | None = None
    # peft target: the LLM's attention projections only (audio encoders have q/k/v_proj too)
    lora_attention_regex: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
    lora_mlp_regex: str = r".*language_model.*\.(gate_proj|up_proj|down_proj)"

    def __init__(self) -> None:
        self.model: Any = None
        self.tokenizer: Any = None
        self.stop_token_ids: list[int] = []
        # how this checkpoint was trained to be prompted (granularity, interleave, prompt_format);
        # saved in grounder_config.json, empty for an untrained base model
        self.settings: dict = {}

    # ---- audio and text in -------------------------------------------------------------
    # encode_audio = project_audio(audio_features(wave)). The split lets training cache the frozen
    # encoder's output per file while a trainable projector still gets gradients.
    @abc.abstractmethod
    def audio_features(self, wave_16k) -> "torch.Tensor":
        """Frozen encoder output for the whole file, [T, D] (no 30 s cap), without gradients.

        Frame ``i`` covers ``[i / fps, (i + 1) / fps)`` seconds.
        """

    @abc.abstractmethod
    def project_audio(self, features, query: str | None = None) -> "torch.Tensor":
        """[T, D] encoder features -> [T, H] embeddings in the LLM's input space. ``query`` is
        read only by backbones whose audio tokens depend on it (``query_conditioned_audio``)."""

    # True when the audio embeddings depend on the query (the embedded default's score channel):
    # the audio prefix is then built per query, not once per file
    query_conditioned_audio: bool = False

    def encode_audio(self, wave_16k, query: str | None = None) -> "torch.Tensor":
        """Audio embeddings in LLM space, [T, H], ``frames_per_second`` per second, time order.
        ``query`` is needed (and used) only when ``query_conditioned_audio``."""
        import torch

        with torch.no_grad():
            return self.project_audio(self.audio_features(wave_16k), query)

    def embed_text(self, ids, query=None) -> "torch.Tensor":
        """Token ids [..., L] -> input embeddings [..., L, H].

        ``query`` (the query text, or one per row) matters only for backbones with a query soft
        token (``prompt_format().query_suffix``); pass it whenever the ids hold a question.
        """
        return self.model.get_input_embeddings()(ids)

    def prompt_format(self):
        """How this backbone is prompted by default (chat template of its tokenizer)."""
        from ..prompts import PromptFormat

        return PromptFormat.for_tokenizer(self.tokenizer)

    # ---- the language model ------------------------------------------------------------
    @property
    @abc.abstractmethod
    def decoder(self):
        """The LLM body: ``decoder(inputs_embeds=, attention_mask=, position_ids=, past_key_values=,
        use_cache=)`` -> output with ``last_hidden_state`` [B, L, H] (no vocabulary head)."""

    @property
    @abc.abstractmethod
    def lm_head(self):
        """hidden [..., H] -> logits [..., V]. Training applies it only where labels are."""

    @property
    def core(self):
        """The transformers/torch model itself, also when ``model`` is wrapped by peft."""
        get = getattr(self.model, "get_base_model", None)
        return get() if callable(get) else self.model

    @property
    def hidden_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def device(self):
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self):
        return self.model.get_input_embeddings().weight.dtype

    def encoder_modules(self) -> list:
        """Modules that stay frozen in training (audio encoder; its projector too for the big
        backbones, which were aligned by their authors)."""
        return []

    def generate(self, inputs_embeds, attention_mask, *, past_key_values=None, max_new_tokens: int = 64):
        """Greedy answers: ids of the new tokens only, [B, <= max_new_tokens], pad id after a stop.

        ``inputs_embeds`` [B, L, H] is the whole (left-padded) sequence; ``attention_mask`` [B, L].
        With ``past_key_values`` (a transformers Cache of the first P positions, e.g. the shared
        audio prefix) only positions P.. are run; the cache is extended in place, so pass a copy to
        reuse it. The vocabulary head runs on one position per row and step: transformers'
        ``generate`` would compute it for every prompt position (a [B, L, 151k] tensor) on these
        backbones.
        """
        import torch
        from transformers import DynamicCache

        pad = self.tokenizer.pad_token_id
        stops = torch.tensor(self.stop_token_ids, device=self.device)
        mask = attention_mask.to(self.device).long()
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = past_key_values if past_key_values is not None else DynamicCache()
        start = cache.get_seq_length()
        if start >= inputs_embeds.shape[1]:
            raise ValueError(f"generate: the cache holds {start} positions but the sequence has only {inputs_embeds.shape[1]}")
        x = inputs_embeds[:, start:].to(self.device, self.dtype)
        B = x.shape[0]
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        out = []
        with torch.no_grad():
            for _ in range(max_new_tokens):
                h = self.decoder(inputs_embeds=x, attention_mask=mask, position_ids=pos[:, -x.shape[1]:],
                                 past_key_values=cache, use_cache=True).last_hidden_state[:, -1]
                nxt = self.lm_head(h).argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                out.append(nxt)
                done |= torch.isin(nxt, stops)
                if bool(done.all()):
                    break
                x = self.embed_text(nxt[:, None]).to(self.dtype)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
                pos = torch.cat([pos, pos[:, -1:] + 1], 1)
        return torch.stack(out, 1) if out else torch.empty(B, 0, dtype=torch.long, device=self.device)

    def decode(self, ids) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    # ---- saving ------------------------------------------------------------------------
    @abc.abstractmethod
    def save_pretrained(self, out_dir) -> None:
        """Weights, tokenizer, feature extractor and ``grounder_config.json``; reloadable offline."""

    def grounder_config(self) -> dict:
        return {"kind": self.kind, "base": self.name_or_path, "frames_per_second": self.frames_per_second,
                "settings": self.settings}

    def _read_settings(self, path) -> None:
        p = Path(path) / GROUNDER_CONFIG
        if p.is_file():
            d = json.loads(p.read_text())
            self.settings = dict(d.get("settings") or {})

    def _write_grounder_config(self, out_dir, extra: dict | None = None) -> None:
        d = self.grounder_config() | (extra or {})
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / GROUNDER_CONFIG).write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
