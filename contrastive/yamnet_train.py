"""Train a YAMNet scorer's heads on cached trunk features (the trunk stays frozen).

    python -m contrastive.yamnet_train contrastive/configs/yamnet.json --out runs/yamnet [--resume]

1. The trunk runs once over every training and validation clip (onnxruntime, ~0.4 ms per 0.96 s
   patch); embeddings and logits are cached as fp16 under ``cache_dir``, keyed by the manifest.
2. Each step draws ``batch_size`` clips, interpolates their patch features to 25 frames/s, and
   scores them against the batch's positive phrases (a training rewording half of the time) plus
   negatives from the training vocabulary, ``n_phrases`` in all: FineLAP's sigmoid frame loss on
   the dense head (the zero-shot AudioSet logit is a fixed residual, see ``yamnet_scorer``) and
   the sigmoid clip loss on the global head.
3. Classes in ``held_out`` never reach training: a clip containing one is dropped entirely, and
   they are never drawn as negatives. Their results are reported separately (BENCHMARKS.md).

Checkpoints every ``save_every`` steps (``--resume`` continues); the one with the best validation
frame AUROC is written to ``--out``.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import _from_dict
from .yamnet_scorer import YamnetScorerConfig, YamnetScorerModel, interpolate_patches

FPS = 25.0


@dataclass
class YamnetTrainConfig:
    model: YamnetScorerConfig = field(default_factory=lambda: YamnetScorerConfig(kind="trained"))
    train: list = field(default_factory=list)      # manifests (jsonl with audio + events)
    val: str = ""
    held_out: list = field(default_factory=list)   # classes excluded from training entirely
    train_split: str = "train"                      # only records of this split train (and val_split validate)
    val_split: str = "val"
    cache_dir: str = "runs/yamnet-cache"
    steps: int = 3000
    batch_size: int = 32
    n_phrases: int = 64
    reword_prob: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 0.01
    clip_weight: float = 0.1
    eval_every: int = 250
    save_every: int = 250
    max_minutes: float = 55.0
    seed: int = 0
    num_threads: int = 2
    # gate the trained corrections by similarity to the training phrases (off: on val it cost
    # reworded and held-out queries more than it saved, BENCHMARKS.md)
    gate: bool = False
    # clips longer than this train as a random piece of this length (long-form / needle sources)
    crop_seconds: float | None = None
    # no loss on (clip, phrase) pairs where the phrase is in the clip's unlabelled background bed
    # (meta.bed_contains): it may well sound there
    mask_beds: bool = False

    def __post_init__(self):
        self.model = _from_dict(YamnetScorerConfig, self.model, "model")
        if self.model.kind != "trained":
            raise ValueError("model.kind: must be 'trained' to train a head")
        if not self.train or not self.val:
            raise ValueError("train and val manifests are required")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------- features
def _clip_events(rec) -> list[tuple[str, float, float]]:
    return [(e.query, e.start, e.end) for e in rec.events]


def cache_features(manifest: str | Path, model: YamnetScorerModel, cache_dir: str | Path,
                   limit: int | None = None, split: str | None = None) -> dict:
    """Trunk features of every clip of ``manifest``: {ids, events, durations, offsets, emb, logits}
    (emb [sum P, 1024], logits [sum P, 521] fp16; clip i is rows offsets[i]:offsets[i+1])."""
    from tqdm import tqdm

    from data_recipes.audio import load_audio
    from data_recipes.formats import ManifestRecord, read_jsonl, resolve_audio

    manifest = Path(manifest)
    st = manifest.stat()
    key = hashlib.sha1(f"{manifest.resolve()}|{st.st_size}|{st.st_mtime_ns}|{model.config.hop_seconds}|{limit}|{split}".encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{manifest.stem}-{key}.npz"
    recs = [r for r in read_jsonl(manifest, ManifestRecord) if split is None or r.split == split][:limit]
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        feats = {k: z[k] for k in z.files}
    else:
        embs, logits, offsets = [], [], [0]
        for r in tqdm(recs, desc=f"yamnet features {manifest.name}", unit="clip"):
            y = load_audio(resolve_audio(manifest, r), sr=16000)
            with torch.inference_mode():
                e, l = model.trunk.frames(torch.from_numpy(y)[None], model.config.hop_seconds)
            embs.append(e[0].half().numpy())
            logits.append(l[0].half().numpy())
            offsets.append(offsets[-1] + e.shape[1])
        feats = {"emb": np.concatenate(embs), "logits": np.concatenate(logits),
                 "offsets": np.asarray(offsets), "durations": np.asarray([r.duration for r in recs])}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **feats)
        tmp.rename(path)
    if model.config.fine_stream:
        feats.update(_cache_mel(manifest, recs, model, path.with_name(path.stem + "-mel.npz")))
    feats["events"] = [_clip_events(r) for r in recs]
    feats["ids"] = [r.id for r in recs]
    # what a clip's background bed contains, unlabelled: never a negative for that clip
    feats["beds"] = [list((r.meta or {}).get("bed_contains") or []) for r in recs]
    return feats


def _cache_mel(manifest: Path, recs: list, model: YamnetScorerModel, path: Path) -> dict:
    """The fine stream's input per clip (log-mel at 25 frames/s, fp16), cached beside the trunk's."""
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return {"mel": z["mel"], "mel_offsets": z["mel_offsets"]}
    from tqdm import tqdm

    from data_recipes.audio import load_audio
    from data_recipes.formats import resolve_audio

    mels, offsets = [], [0]
    for r in tqdm(recs, desc=f"log-mel {manifest.name}", unit="clip"):
        y = torch.from_numpy(load_audio(resolve_audio(manifest, r), sr=16000))
        with torch.inference_mode():
            m = model.fine_frames(y[None])[0]
        mels.append(m.half().numpy())
        offsets.append(offsets[-1] + len(m))
    out = {"mel": np.concatenate(mels), "mel_offsets": np.asarray(offsets)}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.rename(path)
    return out


class FeatureClips:
    """Cached features of several manifests, minus clips with a held-out class."""

    def __init__(self, parts: list[dict], held_out: set[str]):
        self.items = []          # (part, index)
        self.parts = parts
        for p, part in enumerate(parts):
            for i, ev in enumerate(part["events"]):
                if ev and not held_out & {q for q, _, _ in ev}:
                    self.items.append((p, i))
        self.vocab = sorted({q for part in parts for ev in part["events"] for q, _, _ in ev} - held_out)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, j: int) -> tuple[torch.Tensor, torch.Tensor | None, list, int, list]:
        """(patch features [P, 1545]: logits then embedding; log-mel [T, 64] at 25 fps or None;
        events; T, the clip's frames at 25 fps; the classes its bed contains unlabelled)."""
        p, i = self.items[j]
        part = self.parts[p]
        a, b = part["offsets"][i], part["offsets"][i + 1]
        x = torch.from_numpy(np.concatenate([part["logits"][a:b], part["emb"][a:b]], -1).astype(np.float32))
        mel = None
        if "mel" in part:
            a, b = part["mel_offsets"][i], part["mel_offsets"][i + 1]
            mel = torch.from_numpy(part["mel"][a:b].astype(np.float32))
        T = len(mel) if mel is not None else max(1, int(float(part["durations"][i]) * FPS))
        return x, mel, part["events"][i], T, part.get("beds", [[]] * (i + 1))[i]


def _crop(item: tuple, frames: int, hop: float, rng: random.Random) -> tuple:
    """A random ``frames``-long piece of a longer clip, starting on a patch centre."""
    x, mel, ev, t, beds = item
    step = max(1, int(round(hop * FPS)))
    j0 = step * rng.randint(0, (t - frames) // step)
    off = j0 / FPS
    x = x[j0 // step:]
    mel = mel[j0:j0 + frames] if mel is not None else None
    ev = [(q, a - off, b - off) for q, a, b in ev if b > off and a < off + frames / FPS]
    return x, mel, ev, frames, beds


def make_batch(data: FeatureClips, idx: list[int], n_phrases: int, hop: float, rng: random.Random,
               reword_prob: float = 0.0, negatives: list[str] | None = None,
               crop_frames: int | None = None, mask_beds: bool = False) -> dict:
    """{dense [B, T, C], phrases [N], targets [B, N, T], clip_targets [B, N], mask [B, T],
    pair_mask [B, N] (0 where a phrase is in a clip's unlabelled bed: no loss there)}. Clips longer
    than ``crop_frames`` are cut to a random piece of that length."""
    from data_recipes import vocabulary as voc

    from .data import frame_labels

    items = [data.get(j) for j in idx]
    if crop_frames:
        items = [_crop(it, crop_frames, hop, rng) if it[3] > crop_frames else it for it in items]
    T = max(it[3] for it in items)
    positives = sorted({q for it in items for q, _, _ in it[2]})
    shown = {}
    for q in positives:
        words = voc.train_wordings(voc.lookup(q)) if voc.lookup(q) and rng.random() < reword_prob else []
        shown[q] = rng.choice(words) if words else q
    pool = [q for q in (negatives if negatives is not None else data.vocab) if q not in shown]
    negs = rng.sample(pool, min(len(pool), max(0, n_phrases - len(positives))))
    phrases = [shown[q] for q in positives] + negs
    canon = positives + negs
    fine = items[0][1] is not None
    dense = torch.zeros(len(items), T, items[0][0].shape[-1] + (items[0][1].shape[-1] if fine else 0))
    targets = torch.zeros(len(items), len(phrases), T)
    mask = torch.zeros(len(items), T)
    pair_mask = torch.ones(len(items), len(phrases))
    for b, (x, mel, ev, t, beds) in enumerate(items):
        d = interpolate_patches(x[None], t, hop, FPS)[0]
        dense[b, :t] = torch.cat([d, mel], -1) if fine else d
        targets[b, :, :t] = torch.from_numpy(frame_labels(ev, canon, t, FPS))
        mask[b, :t] = 1
        for k, q in enumerate(canon):
            if mask_beds and q in beds and not targets[b, k].any():
                pair_mask[b, k] = 0
    return {"dense": dense, "phrases": phrases, "targets": targets, "mask": mask, "pair_mask": pair_mask,
            "clip_targets": targets.amax(-1)}


def losses(model: YamnetScorerModel, batch: dict) -> tuple[torch.Tensor, dict]:
    text = model.encode_text(batch["phrases"])
    logits = model.frame_logits(batch["dense"], text)                    # [B, N, T]
    m = batch["mask"][:, None, :] * batch["pair_mask"][:, :, None]
    frame = F.binary_cross_entropy_with_logits(logits, batch["targets"], reduction="none")
    frame = (frame * m).sum() / m.sum()
    if "emb" in text:       # FineLAP's global head beside the dense one
        emb = batch["dense"][..., 521:521 + 1024]
        g = F.normalize(model.global_proj((emb * batch["mask"][..., None]).sum(1) / batch["mask"].sum(1, keepdim=True)), dim=-1)
        zs_clip = (model.zeroshot_logits(batch["dense"], text) - (1 - batch["mask"][:, None]) * 1e4).amax(-1)
        clip_logits = zs_clip + model.clip_logit_scale.exp() * g @ text["emb"].T + model.clip_logit_bias
    else:                   # no global head: the clip logit is the peak frame logit
        clip_logits = (logits - (1 - batch["mask"][:, None]) * 1e4).amax(-1)
    clip = F.binary_cross_entropy_with_logits(clip_logits, batch["clip_targets"], weight=batch["pair_mask"])
    return frame, {"frame": float(frame.detach()), "clip": float(clip.detach()), "clip_t": clip}


def frame_auroc(model: YamnetScorerModel, data: FeatureClips, hop: float, n_phrases: int = 64,
                limit: int = 200, mask_beds: bool = False) -> float:
    """Frame AUROC over val clips x (their positives + fixed negatives), pooled."""
    rng = random.Random(0)
    ys, ss = [], []
    idx = list(range(min(limit, len(data))))
    with torch.no_grad():
        for a in range(0, len(idx), 32):
            b = make_batch(data, idx[a:a + 32], n_phrases, hop, rng, mask_beds=mask_beds)
            p = model.frame_logits(b["dense"], model.encode_text(b["phrases"]))
            m = (b["mask"][:, None, :] * b["pair_mask"][:, :, None]).expand_as(p).bool()
            ys.append(b["targets"][m].numpy())
            ss.append(p[m].numpy())
    from .train import auroc

    return auroc(np.concatenate(ss), np.concatenate(ys) > 0.5)


# ---------------------------------------------------------------------- loop
def train(cfg: YamnetTrainConfig, out: str | Path, resume: bool = False) -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.num_threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = YamnetScorerModel(cfg.model)
    held = set(cfg.held_out)
    t0 = time.time()
    train_data = FeatureClips([cache_features(m, model, cfg.cache_dir, split=cfg.train_split) for m in cfg.train], held)
    val_data = FeatureClips([cache_features(cfg.val, model, cfg.cache_dir, split=cfg.val_split)], held)
    print(f"features ready in {time.time() - t0:.0f} s: {len(train_data)} train clips "
          f"({len(train_data.vocab)} classes; held out: {sorted(held)}), {len(val_data)} val clips", flush=True)
    if cfg.gate:
        # the phrases training shows (canonical + train wordings) open the gate (yamnet_scorer)
        from data_recipes import vocabulary as voc

        shown = set(train_data.vocab)
        for q in train_data.vocab:
            if voc.lookup(q):
                shown.update(voc.train_wordings(voc.lookup(q)))
        model.config.gate_vocab = sorted(shown)
        model._vocab_emb = None
    params = [p for n, p in model.named_parameters() if not n.startswith(("trunk.", "text_encoder."))]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    step, best, rng = 0, -1.0, random.Random(cfg.seed)
    ck = out / "checkpoint.pt"
    if resume and ck.is_file():
        s = torch.load(ck, weights_only=False)
        model.load_state_dict(s["model"], strict=False)
        opt.load_state_dict(s["opt"])
        sched.load_state_dict(s["sched"])
        step, best = s["step"], s["best"]
        rng.setstate(s["rng"])
        print(f"resumed at step {step} (best val frame AUROC {best:.4f})", flush=True)
    log = open(out / "train_log.jsonl", "a")
    t_start = time.time()
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, desc="train yamnet head", unit="step")
    while step < cfg.steps:
        model.train()
        batch = make_batch(train_data, rng.sample(range(len(train_data)), cfg.batch_size), cfg.n_phrases,
                           cfg.model.hop_seconds, rng, cfg.reword_prob,
                           crop_frames=int(round(cfg.crop_seconds * FPS)) if cfg.crop_seconds else None,
                           mask_beds=cfg.mask_beds)
        frame, info = losses(model, batch)
        loss = frame + cfg.clip_weight * info.pop("clip_t")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        bar.update(1)
        bar.set_postfix(frame=f"{info['frame']:.4f}", clip=f"{info['clip']:.3f}")
        out_of_time = (time.time() - t_start) / 60 > cfg.max_minutes
        if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
            model.eval()
            auc = frame_auroc(model, val_data, cfg.model.hop_seconds, mask_beds=cfg.mask_beds)
            rec = {"step": step, "val_frame_auroc": round(auc, 4), **{k: round(v, 5) for k, v in info.items()},
                   "minutes": round((time.time() - t_start) / 60, 2)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            bar.write(json.dumps(rec))
            if auc > best:
                best = auc
                model.save_pretrained(out, run_config=cfg.to_dict(), extra={"step": step, "val_frame_auroc": auc})
        if step % cfg.save_every == 0 or step == cfg.steps or out_of_time:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "best": best, "rng": rng.getstate()}, ck)
        if out_of_time:
            bar.write(f"max_minutes={cfg.max_minutes} reached at step {step}")
            break
    bar.close()
    return {"step": step, "best_val_frame_auroc": best, "minutes": (time.time() - t_start) / 60}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    try:
        cfg = YamnetTrainConfig(**json.loads(a.config.read_text()))
    except (TypeError, ValueError, json.JSONDecodeError) as e:
        raise SystemExit(f"{a.config}: bad config ({e})") from None
    print(json.dumps(train(cfg, a.out, a.resume)))


if __name__ == "__main__":
    main()
