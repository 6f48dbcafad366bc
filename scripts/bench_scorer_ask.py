"""`earmark ask` latency in `scorer` mode after load: one clip, a few queries.

    python scripts/bench_scorer_ask.py [--scorer DIR] [--seconds 60] [--threads 2] [--repeats 5]

The clip is ``--seconds`` of a test-split needle recording (or any ``--audio``), looped to length.
Timed after the models are loaded: one query on new audio (it encodes the audio), and two queries
on new audio in one ``ask_many`` (the audio is encoded once: the difference is what a later query
costs), each the median of ``--repeats`` runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scorer", default=None)
    ap.add_argument("--audio", default=str(Path(__file__).with_name("examples") / "thunder.flac"))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from data_recipes.audio import load_audio
    from grounding.api import Grounder

    y = load_audio(args.audio, sr=16000)
    n = int(args.seconds * 16000)
    y = np.tile(y, n // len(y) + 1)[:n].astype(np.float32)
    t0 = time.perf_counter()
    g = Grounder.from_pretrained(scorer=args.scorer, mode="scorer")
    g.ask(y[:16000], "warm-up", sample_rate=16000)
    load = time.perf_counter() - t0
    first, later = [], []
    for i in range(args.repeats):
        yy = y.copy()
        yy[0] += 1e-6 * (i + 1)            # a new array each round: nothing cached between rounds
        t = time.perf_counter()
        g.ask_many(yy, ["thunder"], sample_rate=16000)
        first.append(time.perf_counter() - t)
        yy[0] += 1e-6
        t = time.perf_counter()
        g.ask_many(yy, ["thunder", "a dog barking"], sample_rate=16000)
        later.append(time.perf_counter() - t)
    print(f"load {load:.1f} s; on {args.seconds:.0f} s of audio in scorer mode: one query {statistics.median(first):.3f} s, "
          f"two queries in one ask_many {statistics.median(later):.3f} s "
          f"(median of {args.repeats}, {args.threads} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
