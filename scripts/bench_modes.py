"""`llm` vs `scorer` vs `fused` on one benchmark split: runs `earmark eval` once per (mode, query
file) and prints the table BENCHMARKS.md keeps (mIoU, R1@0.3/0.5/0.7, existence accuracy on
positives and negatives, two-stage F1, queries/s).

    python scripts/bench_modes.py --manifest NEEDLE/test.jsonl --queries NEEDLE/test.queries.jsonl \
        [--queries reworded=runs/needle-test.reworded.queries.jsonl] [--modes llm,scorer,fused] \
        [--grounder DIR] [--scorer DIR] [--arg key=value ...] --out runs/bench-modes

Each run is an ordinary resumable `earmark eval` directory under ``--out`` (re-running skips what
is answered). ``--arg`` is passed to the predictor of every run (e.g. ``engine=vllm``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _row(label: str, mode: str, m: dict, seconds: float) -> str:
    o = m["overall"]
    ex, r1 = o["existence"], o["r1"]
    qps = o["n_queries"] / seconds if seconds > 0 else float("nan")
    return (f"| {label} | {mode} | {o['miou']:.1f} | {r1['0.3']:.1f} / {r1['0.5']:.1f} / {r1['0.7']:.1f} | "
            f"{ex['positive']:.1f} / {ex['negative']:.1f} | {o['f1']['f1']:.1f} | {o['n_unanswered']} | {qps:.2f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--queries", action="append", required=True, help="[label=]queries.jsonl (repeatable)")
    ap.add_argument("--modes", default="llm,scorer,fused")
    ap.add_argument("--grounder")
    ap.add_argument("--scorer")
    ap.add_argument("--arg", action="append", default=[], help="predictor key=value for every run")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.queries:
        label, _, path = spec.rpartition("=")
        label = label or Path(path).name.split(".")[0]
        for mode in args.modes.split(","):
            run = out / f"{label}-{mode}"
            cmd = [sys.executable, "-m", "earmark_cli", "eval", path, "--manifest", args.manifest, "--out", str(run),
                   "--predictor", "earmark", "--predictor-arg", f"mode={mode}", "--no-plots"]
            for k, v in (("grounder", args.grounder), ("scorer", args.scorer)):
                if v:
                    cmd += ["--predictor-arg", f"{k}={v}"]
            for a in args.arg:
                cmd += ["--predictor-arg", a]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, env=os.environ | {"HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, text=True)
            seconds = time.perf_counter() - t0
            if r.returncode != 0:
                print(f"bench_modes: {label}/{mode} failed ({r.returncode}):\n{r.stdout}", file=sys.stderr)
                return r.returncode
            m = json.loads((run / "metrics.json").read_text())
            rows.append(_row(label, mode, m, seconds))
            print(rows[-1], flush=True)
    table = ["| queries | mode | mIoU | R1@0.3 / 0.5 / 0.7 | acc. pos / neg | F1 | unanswered | queries/s (whole run) |",
             "|---|---|---|---|---|---|---|---|"] + rows
    (out / "table.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
