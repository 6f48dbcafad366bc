"""Train the scorer: ``earmark contrastive train CONFIG.json [--out DIR] [--resume]``.

Reads top to bottom like nanoGPT's train.py: config -> data (cached log-mels) -> model ->
optimizer -> loop (loss terms, accelerate backward, clip, step) with periodic validation (frame
AUROC, computed here in numpy) and checkpoints (``save_pretrained`` + ``train_state.pt`` to resume).
The run config is saved in every checkpoint. The output directory is itself a loadable model.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig, dump_json
from .data import Batcher, index_phrases, load_clips
from .losses import ClipSigmoidLoss, FrameSigmoidLoss, InfoNCELoss, PriorLoss
from .model import ScorerModel, create_model
from .phrases import build_sampler

STATE_NAME = "train_state.pt"


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to 10 % of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def compute_losses(model: ScorerModel, batch: dict, cfg: TrainConfig) -> dict:
    """All loss terms of one batch; ``total`` is their weighted sum."""
    lc = cfg.loss
    g, d = model.audio.forward_mel(batch["mel"])                    # [B, D], [B, L, D]
    K = lc.n_phrases
    uniq, idx = index_phrases(batch["phrases"], K)
    cap_rows = [i for i, c in enumerate(batch["captions"]) if c]
    caps = sorted({batch["captions"][i] for i in cap_rows})
    text = model.encode_text(uniq + caps)
    out: dict[str, torch.Tensor] = {}
    total = g.new_zeros(())
    if lc.clip_loss != "none" and cap_rows:
        cid = torch.tensor([caps.index(batch["captions"][i]) for i in cap_rows])
        labels = (cid[:, None] == torch.arange(len(caps))[None]).float()     # [Bc, C]
        fn = ClipSigmoidLoss() if lc.clip_loss == "sigmoid" else InfoNCELoss()
        out["clip"] = fn(g[cap_rows], text["emb"][len(uniq):], labels,
                         model.clip_logit_scale.exp(), model.clip_logit_bias)
        total = total + lc.clip_weight * out["clip"]
    rows = torch.nonzero(batch["mask"].any(1)).flatten()
    if lc.frame_loss and len(rows):
        ridx = idx[rows]
        if "scale" in text:                 # FLAM: per-text alpha (frame loss), beta (prior loss only)
            scale, bias = text["scale"][ridx], text["bias"][ridx].detach()
        else:
            scale, bias = model.frame_logit_scale.exp(), model.frame_logit_bias
        out["frame"] = FrameSigmoidLoss(lc.chunk_size)(d[rows], text["emb"][ridx], batch["labels"][rows],
                                                       batch["mask"][rows], scale, bias)
        total = total + lc.frame_weight * out["frame"]
        if "bias" in text:
            out["prior"] = PriorLoss()(text["bias"][ridx], batch["labels"][rows], batch["mask"][rows])
            total = total + lc.prior_weight * out["prior"]
    if model.config.audio.kind == "patch" and model.config.audio.mask_ratio > 0:
        out["mae"] = model.audio.encoder.mae_loss(batch["mel"])
        total = total + out["mae"]
    out["total"] = total
    return out


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn's, ties counting one half); NaN without both classes
    (scikit-learn raises there, and a validation set without positives is not an error)."""
    from sklearn.metrics import roc_auc_score

    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, scores))


@torch.no_grad()
def validate(model: ScorerModel, batcher: Batcher, clips, batch_size: int = 16, seed: int = 1234) -> dict:
    """Frame AUROC and losses over ``clips`` with a fixed phrase draw (same every call)."""
    model.eval()
    rng = random.Random(seed)
    was_aug, batcher.augment = batcher.augment, False
    all_s, all_l, losses = [], [], []
    try:
        for a in range(0, len(clips), batch_size):
            batch = batcher.make(clips[a:a + batch_size], rng)
            uniq, idx = index_phrases(batch["phrases"], batcher.n)
            _, d = model.audio.forward_mel(batch["mel"])
            text = model.encode_text(uniq)
            logits = model.frame_logits(d, text, idx)
            p = model.frame_probs(logits, text, idx)
            m = batch["mask"]
            all_s.append(p[m].numpy().ravel())
            all_l.append(batch["labels"][m].numpy().ravel())
    finally:
        batcher.augment = was_aug
    model.train()
    if not all_s:
        return {"frame_auroc": float("nan")}
    return {"frame_auroc": auroc(np.concatenate(all_s), np.concatenate(all_l))}


def _save(model, cfg, out: Path, opt, step: int, batcher: Batcher, history: list) -> None:
    model.save_pretrained(out, run_config=cfg, half=cfg.half_precision_save, extra={"step": step})
    tmp = out / (STATE_NAME + ".tmp")
    torch.save({"step": step, "optimizer": opt.state_dict(), "batcher_rng": batcher.state(),
                "torch_rng": torch.get_rng_state(), "history": history}, tmp)
    tmp.replace(out / STATE_NAME)


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
          cache_dir: str | Path | None = None) -> dict:
    from accelerate import Accelerator
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    t0 = time.time()

    # ---- data
    if not cfg.train:
        raise ValueError("train config: 'train' lists no manifests")
    a = cfg.model.audio
    cache = Path(cache_dir) if cache_dir else out / "cache"
    clips = []
    for m in cfg.train:
        clips += load_clips(m, a, max_seconds=max(a.window_seconds, 30.0), limit=cfg.max_train_clips,
                            cache_dir=cache, split=cfg.train_split, progress=progress)
    queries = sorted({q for c in clips for q, _, _ in c.events})
    sampler, wordings = build_sampler(queries)
    batcher = Batcher(clips, a, sampler, cfg.loss.n_phrases, wordings if cfg.augment else None,
                      augment=cfg.augment, seed=cfg.seed)
    val_clips = []
    if cfg.val:
        val_clips = load_clips(cfg.val, a, max_seconds=a.window_seconds, limit=cfg.max_val_clips,
                               cache_dir=cache, split=cfg.val_split, progress=progress)
        val_clips = [c for c in val_clips if c.has_frames]
    print(f"data: {len(clips)} train clips ({sum(c.has_frames for c in clips)} frame-labelled), "
          f"{len(val_clips)} val clips, {len(queries)} train queries; {time.time() - t0:.0f} s", flush=True)

    # ---- model, optimizer
    model, _ = create_model(cfg.model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history = 0, []
    if resume and (out / STATE_NAME).is_file():
        loaded = ScorerModel.from_pretrained(out)
        model.load_state_dict(loaded.state_dict())
        st = torch.load(out / STATE_NAME, weights_only=False)
        opt.load_state_dict(st["optimizer"])
        batcher.set_state(st["batcher_rng"])
        torch.set_rng_state(st["torch_rng"])
        step, history = st["step"], st["history"]
        print(f"resumed from {out} at step {step}", flush=True)
    accelerator = Accelerator(cpu=True)
    model, opt = accelerator.prepare(model, opt)
    raw = accelerator.unwrap_model(model)
    model.train()

    # ---- loop
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not progress, dynamic_ncols=True)
    log_path = out / "log.jsonl"
    running: dict[str, float] = {}
    while step < cfg.steps:
        lr = get_lr(step, cfg)
        for gr in opt.param_groups:
            gr["lr"] = lr
        batch = batcher.sample(cfg.batch_size)
        terms = compute_losses(raw, batch, cfg)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(terms["total"])
        accelerator.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        for k, v in terms.items():
            v = float(v.detach())
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
        out_of_time = cfg.max_minutes is not None and time.time() - t0 > 60 * cfg.max_minutes
        last = step == cfg.steps or out_of_time
        if step % cfg.eval_every == 0 or last:
            rec = {"step": step, "lr": lr, "elapsed_s": round(time.time() - t0, 1),
                   **{f"loss_{k}": round(v, 4) for k, v in running.items()}}
            if val_clips:
                rec.update(validate(raw, batcher, val_clips))
            history.append(rec)
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.write(json.dumps(rec))
        if step % cfg.save_every == 0 or last:
            _save(raw, cfg, out, opt, step, batcher, history)
        if out_of_time:
            print(f"stopping at step {step}: max_minutes={cfg.max_minutes} reached", flush=True)
            break
    bar.close()
    summary = {"steps": step, "elapsed_s": round(time.time() - t0, 1), "history": history[-1:] if history else []}
    dump_json(summary, out / "train_summary.json")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="earmark contrastive train", description=__doc__.splitlines()[0])
    ap.add_argument("config", help="JSON TrainConfig (see contrastive/configs/)")
    ap.add_argument("--out", default=None, help="output directory (default: runs/<config name>)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    ap.add_argument("--steps", type=int, default=None, help="override the config's steps")
    ap.add_argument("--cache-dir", default=None, help="log-mel cache (default OUT/cache)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    cfg = TrainConfig.from_json(args.config)
    if args.steps is not None:
        cfg.steps = args.steps
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    train(cfg, out, resume=args.resume, progress=not args.quiet, cache_dir=args.cache_dir)
    print(f"saved scorer to {out}")
    return 0
