"""Is the pretrained `aisfx` CNN a better frozen feature source than the scorer's own encoder?

A linear probe on the corpus SED split: clip-level features from each encoder (frozen), one
logistic regression per sound class fitted on train clips, per-class AUROC on test clips (never
used in training). The same probe for both encoders, so the difference is the features.

* ``aisfx`` (0.1.2, MIT; 6.2 M-parameter CNN trained on sound-effect libraries): its own input
  (44.1 kHz, peak-normalised, 96-band log-mel, 2 s blocks at 1 s hop; our 16 kHz clips are
  resampled, so its bands above 8 kHz are empty) and its own pooling (max over time per block),
  then mean and max over the clip's blocks -> 1024-d.
* ``scorer``: the scorer checkpoint's dense encoder features (before its projection), mean and
  max over the clip's frames.
* ``scorer zero-shot`` (reference, no probe): the scorer's own existence score for the class name.

    pip install --no-deps aisfx==0.1.2        # it pins old librosa/numpy; its code is not used
    python scripts/bench_aisfx.py --train 400 --test 300 [--scorer DIR] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def aisfx_net():
    """aisfx's EmbeddingNet with its shipped weights (the classification heads are dropped)."""
    import importlib.util

    import torch

    spec = importlib.util.find_spec("aisfx")
    if spec is None:
        raise SystemExit("bench_aisfx: aisfx is not installed (pip install --no-deps aisfx==0.1.2)")
    from aisfx.models.cnn2d import EmbeddingNet

    root = Path(spec.origin).parent
    # a pickled (state_dict, dataset dict) pair: needs weights_only=False (a trusted package file)
    weights, _ = torch.load(root / "models" / "checkpoint.pth", map_location="cpu", weights_only=False)
    net = EmbeddingNet("max", 3, 1, 64)
    net.load_state_dict({k[len("embedding_net."):]: v for k, v in weights.items() if k.startswith("embedding_net.")})
    return net.eval()


def aisfx_features(net, path: Path) -> np.ndarray:
    """aisfx's librosa front end (peak-normalised audio, htk mel, log10(10^4 x + 1), its fixed
    min-max scaling), 100-frame blocks at 50-frame hop, embedding per block; mean and max over blocks."""
    import librosa
    import torch

    y, sr = librosa.load(str(path), sr=44100)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    y = y / (peak if peak > 0 else 1.0)
    spec = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=96, norm=1.0, fmin=0.0, fmax=22050.0, htk=True,
                                          power=2.0, hop_length=1024, win_length=2048)
    spec = (np.log10(spec * 10000.0 + 1) / 9.457798957824707).T  # [T, 96]
    if spec.shape[0] < 100:
        spec = np.vstack([spec, np.zeros((100 - spec.shape[0], 96), spec.dtype)])
    starts = range(0, spec.shape[0] - 100 + 1, 50)
    blocks = torch.from_numpy(np.stack([spec[s:s + 100] for s in starts])).float()
    with torch.no_grad():
        emb = net(blocks).numpy()  # [n_blocks, 512]
    return np.concatenate([emb.mean(0), emb.max(0)])


def scorer_features(model, path: Path) -> np.ndarray:
    import torch

    from data_recipes.audio import load_audio

    wave = load_audio(path, sr=model.config.audio.sample_rate)
    with torch.no_grad():
        _, dense = model.audio_features(torch.from_numpy(wave)[None])
    d = dense[0].numpy()
    return np.concatenate([d.mean(0), d.max(0)])


def probe_auroc(xtr, ytr, xte, yte) -> tuple[float, int]:
    """Mean per-class AUROC of one-vs-rest logistic regressions (classes with both labels in train
    and test), and how many classes that is."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(xtr)
    xtr, xte = sc.transform(xtr), sc.transform(xte)
    aucs = []
    for c in range(ytr.shape[1]):
        if ytr[:, c].min() == ytr[:, c].max() or yte[:, c].min() == yte[:, c].max():
            continue
        clf = LogisticRegression(C=0.1, max_iter=2000).fit(xtr, ytr[:, c])
        aucs.append(roc_auc_score(yte[:, c], clf.decision_function(xte)))
    return float(np.mean(aucs)), len(aucs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sed", default="/work/data/synth/sed", help="directory with train.jsonl / test.jsonl")
    ap.add_argument("--train", type=int, default=400, help="first N train clips")
    ap.add_argument("--test", type=int, default=300, help="first N test clips")
    ap.add_argument("--scorer", default=None, help="scorer checkpoint (default: the package's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args(argv)

    import torch
    from tqdm import tqdm

    from contrastive.scorer import Scorer
    from data_recipes.formats import ManifestRecord, iter_jsonl, resolve_audio

    torch.set_num_threads(args.threads)
    sed = Path(args.sed)
    recs = {s: [r for r in iter_jsonl(sed / f"{s}.jsonl", ManifestRecord)][:n]
            for s, n in (("train", args.train), ("test", args.test))}
    classes = sorted({e.query for rs in recs.values() for r in rs for e in r.events})
    scorer = Scorer.from_pretrained(args.scorer)
    net = aisfx_net()
    feats = {"aisfx": {}, "scorer": {}}
    labels, seconds = {}, {"aisfx": 0.0, "scorer": 0.0}
    zero_shot = []
    for split, rs in recs.items():
        y = np.zeros((len(rs), len(classes)), np.int64)
        fa, fs = [], []
        for i, r in enumerate(tqdm(rs, desc=f"features {split}")):
            path = resolve_audio(sed / f"{split}.jsonl", r)
            for c in {e.query for e in r.events}:
                y[i, classes.index(c)] = 1
            t0 = time.perf_counter()
            fa.append(aisfx_features(net, path))
            t1 = time.perf_counter()
            fs.append(scorer_features(scorer.model, path))
            seconds["aisfx"] += t1 - t0
            seconds["scorer"] += time.perf_counter() - t1
            if split == "test":
                emb = scorer.embed(path)
                zero_shot.append([scorer.exists(emb, c) for c in classes])
        labels[split] = y
        feats["aisfx"][split], feats["scorer"][split] = np.stack(fa), np.stack(fs)
    from sklearn.metrics import roc_auc_score

    yte, zs = labels["test"], np.asarray(zero_shot)
    zs_auc = [roc_auc_score(yte[:, c], zs[:, c]) for c in range(len(classes)) if 0 < yte[:, c].sum() < len(yte)]
    audio_s = sum(r.duration for rs in recs.values() for r in rs)
    result = {"train_clips": len(recs["train"]), "test_clips": len(recs["test"]), "classes": len(classes),
              "scorer_zero_shot_auroc": round(float(np.mean(zs_auc)), 4), "scorer_zero_shot_classes": len(zs_auc)}
    for name in ("aisfx", "scorer"):
        auc, n = probe_auroc(feats[name]["train"], labels["train"], feats[name]["test"], labels["test"])
        result[f"{name}_probe_auroc"] = round(auc, 4)
        result[f"{name}_probe_classes"] = n
        result[f"{name}_dim"] = int(feats[name]["train"].shape[1])
        result[f"{name}_x_realtime"] = round(audio_s / max(seconds[name], 1e-9), 1)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
