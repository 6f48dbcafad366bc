"""The wide corpus's label review sheet: random tagger-labelled clips to check by eye."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .audio import load_audio
from .corpus import _order_key

__all__ = ["write_review"]


def write_review(dest: str | os.PathLike, records: list[dict], *, n: int = 100, seed: int = 0) -> Path:
    """A sheet of ``n`` random tagger-labelled clips: ``review.tsv`` (one row per clip, with a
    ``correct`` column to fill in by hand) and ``review-<page>.png`` (mel spectrogram thumbnails
    numbered as in the TSV, with label, confidence and file name), 25 per page."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dest = Path(dest)
    pool = sorted(records, key=lambda d: _order_key(seed, "review|" + d["id"]))[:n]
    rows = ["n\tlabel\tphrase\tconfidence\tpackage\tpath\taudio\tcorrect"]
    for i, d in enumerate(pool):
        m = d["meta"]
        rows.append(f"{i}\t{m['label']}\t{d['events'][0]['query']}\t{m['confidence']:.2f}\t{d['source']}\t"
                    f"{m['path']}\t{d['audio']}\t")
    (dest / "review.tsv").write_text("\n".join(rows) + "\n")
    per = 25
    for page in range(0, len(pool), per):
        chunk = pool[page:page + per]
        fig, axes = plt.subplots(5, 5, figsize=(15, 12), constrained_layout=True)
        for ax in axes.flat:
            ax.axis("off")
        for j, d in enumerate(chunk):
            y = load_audio(dest / d["audio"], 16000)
            mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000, n_mels=48, hop_length=160),
                                      ref=np.max)
            ax = axes.flat[j]
            ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-70, vmax=0,
                      extent=(0, len(y) / 16000, 0, 48))
            ax.set_title(f"#{page + j} {d['meta']['label'][:28]} ({d['meta']['confidence']:.2f})\n"
                         f"{d['source'][:18]}: {Path(d['meta']['path']).name[:26]}", fontsize=7)
        fig.savefig(dest / f"review-{page // per}.png", dpi=70)
        plt.close(fig)
    return dest / "review.tsv"
