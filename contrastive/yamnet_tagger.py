"""YAMNet as the AudioSet tagger of the wide corpus recipe (``data_recipes.corpus_wide``).

The recipe lives below ``contrastive`` in the import layers, so it finds this class through the
``earmark.taggers`` entry point instead of importing it.
"""
from __future__ import annotations

import numpy as np
import torch

from .yamnet import SAMPLE_RATE, YamNet, load_class_names


class YamnetTagger:
    """``tagger(wave)`` -> AudioSet probabilities [P, 521] of 0.96 s patches centred every ``hop`` s."""

    sample_rate = SAMPLE_RATE

    def __init__(self, hop: float = 0.24):
        self.hop = hop
        self.class_names = load_class_names()
        self.trunk = YamNet.from_pretrained()

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
        with torch.no_grad():
            _, logits = self.trunk.frames(x, hop_seconds=self.hop)
        return torch.sigmoid(logits[0]).numpy()
