"""Fine-tune a grounder backbone on instruction data (SpotSound §2.3): one plain loop, read top to
bottom like nanoGPT's — config, setup, model, data, optimizer, loop, save.

* loss on answer tokens only, and the vocabulary head is computed only at those positions (the
  full [B, L, 151k] logits of a long interleaved sequence cost ~60x more);
* audio encoder (and, for the big backbones, its projector) frozen;
* LoRA r=8, alpha=16 on the LLM's attention (MLP optional) through peft, with a regex that cannot
  touch the audio tower — or, for the embedded default, the whole small LLM + projector trained;
  backbones with ``attach_lora`` (embedded-lm) keep their adapter unmerged: it is their checkpoint;
* AdamW, linear warmup then linear decay; gradient checkpointing; bf16 when CUDA is available
  (fp32 on CPU, same code path);
* ``deepspeed=zero2.json|zero3.json``: the same loop through ``deepspeed.initialize``
  (launch with ``torchrun`` or ``deepspeed``; on CPU set ``DS_ACCELERATOR=cpu``, gloo is used);
* saves ``adapter/`` (peft, with the base id), ``merged/`` (a full checkpoint ``load_backbone``
  reads offline), ``train_config.json``, ``train_log.jsonl`` and ``loss.png``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# trainable input modules a backbone may have besides its LLM (audio, query soft token, score channel)
PROJECTORS = ("projector", "query_projector", "score_projector")


@dataclass
class SourceConfig:
    """One manifest mixed into the training data with a relative ``weight``."""

    manifest: str
    weight: float = 1.0
    split: str | None = "train"
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.manifest:
            raise ValueError("sources.manifest: empty path")
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ValueError(f"sources.weight must be a finite number >= 0, got {self.weight}")
        self.name = self.name or Path(self.manifest).stem


@dataclass
class TrainConfig:
    backbone: str                       # local checkpoint directory or hub id
    output_dir: str
    sources: list = field(default_factory=list)   # [SourceConfig]
    kind: str | None = None             # backbone kind; None = read from the checkpoint
    total_quadruplets: int | None = None  # None: the largest mix without repeating a source
    granularity: float = 1.0
    interleave: bool = True             # False = the paper's Table 7 ablation (no timestamps)
    paraphrase_prob: float = 0.0        # chance a training query is swapped for a train wording
    stages: list = field(default_factory=lambda: ["exist", "ground"])  # which instruction examples to train on
    lora: bool = True                   # False: train the LLM (and projector) fully
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_mlp: bool = False
    train_projector: bool = False       # the audio projector (always trained when lora=False)
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    batch_size: int = 1                 # per process
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int | None = None        # optimizer steps; None = epochs over the data
    gradient_checkpointing: bool = True
    bf16: bool | None = None            # None = bf16 iff CUDA is available
    seed: int = 0
    log_every: int = 10
    audio_cache_items: int = 256        # encoded audio kept in memory (the encoder is frozen)
    save_merged: bool = True
    save_adapter: bool = True
    val_sources: list = field(default_factory=list)  # [SourceConfig]: held-out answer loss
    val_examples: int = 64              # held-out examples evaluated (a fixed random subset)
    eval_every: int = 0                 # steps between held-out evaluations (0: only at the end)
    save_every: int = 0                 # steps between resumable checkpoints (0: none)
    resume: bool = True                 # continue from output_dir's checkpoint when there is one
    deepspeed: str | None = None        # path of a DeepSpeed JSON config
    # the scorer's candidate windows written into grounding questions ("hint the LLM"): a scorer
    # checkpoint directory, or "default" for the package's; null = no hints
    hint_scorer: str | None = None
    hint_k: int = 3                     # candidates per hint, best first
    hint_drop: float = 0.0              # chance a training question goes without its hint (llm mode)

    def __post_init__(self) -> None:
        self.sources = [s if isinstance(s, SourceConfig) else SourceConfig(**s) for s in self.sources]
        self.val_sources = [s if isinstance(s, SourceConfig) else SourceConfig(**s) for s in self.val_sources]
        for name in ("val_examples", "eval_every", "save_every"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.sources:
            raise ValueError("sources: at least one manifest is needed")
        if not any(abs(self.granularity - g) < 1e-9 for g in (0.2, 1.0, 2.0)):
            raise ValueError(f"granularity must be 0.2, 1 or 2 seconds, got {self.granularity}")
        for name in ("lora_r", "lora_alpha", "batch_size", "grad_accum", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if int(self.hint_k) < 1:
            raise ValueError(f"hint_k must be >= 1, got {self.hint_k}")
        if not (0 <= self.hint_drop <= 1):
            raise ValueError(f"hint_drop must be in [0, 1], got {self.hint_drop}")
        if not (0 <= self.paraphrase_prob <= 1):
            raise ValueError(f"paraphrase_prob must be in [0, 1], got {self.paraphrase_prob}")
        if not (0 <= self.warmup_ratio < 1):
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if not self.stages or any(st not in ("exist", "ground") for st in self.stages):
            raise ValueError(f"stages must be a non-empty subset of ['exist', 'ground'], got {self.stages!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if self.total_quadruplets is not None and self.total_quadruplets < 1:
            raise ValueError(f"total_quadruplets must be >= 1 or null, got {self.total_quadruplets}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, path, **overrides) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such training config")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {sorted(unknown)}")
        # relative manifest/backbone paths are relative to the config file, as in manifests
        for s in d.get("sources", []) + d.get("val_sources", []):
            if isinstance(s, dict) and "manifest" in s and not Path(s["manifest"]).is_absolute():
                cand = path.parent / s["manifest"]
                if cand.exists():
                    s["manifest"] = str(cand)
        if d.get("backbone") and not Path(d["backbone"]).is_absolute() and (path.parent / d["backbone"]).exists():
            d["backbone"] = str(path.parent / d["backbone"])
        d.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**d)


# ---- pieces of the loop --------------------------------------------------------------------
class AudioCache:
    """Frozen-encoder features by path, least-recently-used out (valid for the whole run). The
    projector runs per batch, so it can be trained."""

    def __init__(self, backbone, max_items: int = 256) -> None:
        self.backbone, self.max_items, self._d = backbone, max_items, OrderedDict()

    def __call__(self, path: str):
        if path in self._d:
            self._d.move_to_end(path)
            return self._d[path]
        from data_recipes.audio import load_audio

        emb = self.backbone.audio_features(load_audio(path, sr=16000)).detach()
        self._d[path] = emb
        if len(self._d) > self.max_items:
            self._d.popitem(last=False)
        return emb


def answer_loss(backbone, batch):
    """Mean cross-entropy over answer tokens; the head sees only the positions that predict one."""
    import torch.nn.functional as F

    hidden = backbone.decoder(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                              position_ids=batch.position_ids, use_cache=False).last_hidden_state  # [B, L, H]
    target = batch.labels[:, 1:]
    sel = target != -100
    if not bool(sel.any()):
        raise ValueError("answer_loss: batch has no answer tokens")
    logits = backbone.lm_head(hidden[:, :-1][sel])  # [N, V], N = answer tokens in the batch
    return F.cross_entropy(logits.float(), target[sel])


def make_batch(examples, backbone, interleaver, cache, *, padding_side: str = "right"):
    from .interleave import collate

    from .prompts import clean_query

    audio = [backbone.project_audio(cache(e.audio), clean_query(e.query)) for e in examples]
    seqs = [interleaver.sequence(a.shape[0], e.stage, e.query, e.answer, hint=e.hint) for e, a in zip(examples, audio)]
    return collate(seqs, audio, backbone, padding_side=padding_side)


def prepare_model(backbone, cfg: TrainConfig):
    """Freeze what stays frozen, add LoRA (or unfreeze the LLM); returns (model to train, peft model|None)."""
    model = backbone.model
    for p in model.parameters():
        p.requires_grad_(False)
    peft_model = None
    attach = getattr(backbone, "attach_lora", None)
    if attach is not None and not cfg.lora:
        raise ValueError(f"backbone kind {backbone.kind!r} trains a LoRA adapter on a frozen pretrained LM: "
                         "set lora: true")
    if cfg.lora and attach is not None:
        # checkpoints of this kind are the adapter itself: it stays unmerged inside the backbone
        attach(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout, mlp=cfg.lora_mlp)
    elif cfg.lora:
        from peft import LoraConfig, get_peft_model

        target = backbone.lora_attention_regex
        if cfg.lora_mlp:
            target = f"(?:{target})|(?:{backbone.lora_mlp_regex})"
        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=target, bias="none")
        peft_model = get_peft_model(model, lcfg)
        peft_model.peft_config["default"].base_model_name_or_path = backbone.name_or_path
    else:
        for m in (backbone.decoder, backbone.lm_head):
            for p in m.parameters():
                p.requires_grad_(True)
        backbone.model.get_input_embeddings().weight.requires_grad_(True)
    # the audio encoder stays frozen (everything started frozen); the projector trains on request,
    # and always when the LLM itself is trained from scratch (embedded default)
    if cfg.train_projector or not cfg.lora or getattr(backbone, "trains_projector", False):
        for name in PROJECTORS:
            mod = getattr(backbone, name, None)
            mod = mod if mod is not None else getattr(backbone.core, name, None)
            for p in (mod.parameters() if mod is not None else []):
                p.requires_grad_(True)
    if cfg.gradient_checkpointing:
        dec = backbone.decoder
        if getattr(dec, "supports_gradient_checkpointing", False):
            # transformers 5 renamed it; non-reentrant works with frozen (grad-less) input embeddings
            if hasattr(dec, "activation_checkpointing_enable"):
                dec.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                dec.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return (peft_model if peft_model is not None else model), peft_model


def build_examples(cfg: TrainConfig, rng: random.Random, *, val: bool = False):
    from .data import mix, quadruplets

    sources = cfg.val_sources if val else cfg.sources
    pools = {s.name: quadruplets(s.manifest, split=s.split, rng=rng) for s in sources}
    quads = mix(pools, {s.name: s.weight for s in sources}, None if val else cfg.total_quadruplets, rng)
    prob = 0.0 if val else cfg.paraphrase_prob
    examples = [ex for q in quads for ex in q.examples(source=q.record.source or "", rng=rng, paraphrase_prob=prob)
                if ex.stage in cfg.stages]
    rng.shuffle(examples)
    examples = examples[:cfg.val_examples] if val else examples
    if cfg.hint_scorer:
        from .data import attach_hints

        attach_hints(examples, scorer_candidates(cfg.hint_scorer, cfg.hint_k), drop=0.0 if val else cfg.hint_drop,
                     rng=rng)
    return examples


def scorer_candidates(path: str, k: int):
    """``(audio path, query) -> [(start, end)]``: the top-``k`` candidate windows of a contrastive
    scorer (``"default"``: the package's), as the pipeline computes them for its hints."""
    from contrastive.scorer import Scorer

    scorer = Scorer.from_pretrained(None if path == "default" else path)

    def candidates(audio: str, query: str) -> list[tuple[float, float]]:
        return [(a, b) for a, b, _ in scorer.candidates(scorer.embed(audio), query, k=k)]

    return candidates


def val_loss(backbone, model, examples, interleaver, cache, batch_size: int, autocast) -> float:
    """Mean answer loss over held-out examples (every process runs all of them: under ZeRO-3 the
    forward passes are collective)."""
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad(), autocast():
        for i in range(0, len(examples), batch_size):
            chunk = examples[i:i + batch_size]
            total += float(answer_loss(backbone, make_batch(chunk, backbone, interleaver, cache))) * len(chunk)
            n += len(chunk)
    model.train()
    return total / max(1, n)


def lr_schedule(optimizer, warmup: int, total: int):
    """Linear warmup to ``cfg.lr`` over ``warmup`` steps, then linear decay to 0 at ``total``
    (transformers' "linear" schedule; a LambdaLR, so checkpoints save and resume it)."""
    from transformers import get_scheduler

    return get_scheduler("linear", optimizer, num_warmup_steps=warmup, num_training_steps=total)


# ---- the loop ------------------------------------------------------------------------------
def train(cfg: TrainConfig, *, backbone=None) -> Path:
    import torch
    from tqdm import tqdm

    from .backbones import load_backbone
    from .interleave import Interleaver

    out = Path(cfg.output_dir)
    use_ds = cfg.deepspeed is not None
    rank, world = 0, 1
    if use_ds:
        import deepspeed

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        deepspeed.init_distributed(dist_backend=backend)
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    cuda = torch.cuda.is_available()
    bf16 = cuda if cfg.bf16 is None else cfg.bf16
    dtype = torch.bfloat16 if bf16 else torch.float32
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    # model
    if backbone is None:
        backbone = load_backbone(cfg.backbone, cfg.kind, dtype=dtype, device=device)
    model, peft_model = prepare_model(backbone, cfg)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_train, n_all = sum(p.numel() for p in trainable), sum(p.numel() for p in model.parameters())
    interleaver = Interleaver(backbone.tokenizer, granularity=cfg.granularity, fps=backbone.frames_per_second,
                              prompt_format=backbone.prompt_format(), placeholder_id=backbone.audio_token_id,
                              interleave=cfg.interleave)

    # data: every process builds the same shuffled list and takes its own slice
    examples = build_examples(cfg, random.Random(cfg.seed))
    mine = examples[rank::world]
    per_step = cfg.batch_size * cfg.grad_accum
    steps_per_epoch = max(1, len(mine) // per_step)
    total = cfg.max_steps or max(1, int(math.ceil(steps_per_epoch * cfg.epochs)))
    # no warmup when the ratio rounds to 0 steps: the first step then trains at full lr
    warmup = int(cfg.warmup_ratio * total)

    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = lr_schedule(optimizer, warmup, total)
    engine, zero3 = None, False
    if use_ds:
        ds_cfg = deepspeed_config(cfg.deepspeed, cfg, bf16=bf16, world=world)
        zero3 = ds_cfg.get("zero_optimization", {}).get("stage", 0) == 3
        # DeepSpeed gets the LLM side only; the frozen audio encoder stays a plain module, whole on
        # every process (under ZeRO-3 a partitioned Whisper tower breaks: its forward reads
        # embed_positions.weight directly, which no hook gathers)
        engine, optimizer, _, sched = deepspeed.initialize(model=llm_modules(backbone), optimizer=optimizer,
                                                           lr_scheduler=sched, config=ds_cfg,
                                                           model_parameters=trainable)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
        log.info("%d examples (%d per process), %d steps, %d/%d trainable params (%.3f%%)", len(examples),
                 len(mine), total, n_train, n_all, 100 * n_train / max(1, n_all))

    cache = AudioCache(backbone, cfg.audio_cache_items)
    val = build_examples(cfg, random.Random(cfg.seed + 1), val=True) if cfg.val_sources else []
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731

    # resume: trainable weights, optimizer, schedule, data order and position
    order, cursor, start = list(range(len(mine))), 0, 0
    ckpt = out / "checkpoint"
    if cfg.resume and ckpt.is_dir():
        state = load_checkpoint(ckpt, model, optimizer, sched, engine, rank)
        order, cursor, start = state["order"], state["cursor"], state["step"]
        if rank == 0:
            log.info("resumed from %s at step %d", ckpt, start)
    history = _read_log(out / "train_log.jsonl", upto=start) if rank == 0 else []
    logf = open(out / "train_log.jsonl", "a" if start else "w") if rank == 0 else None
    t0 = time.time() - (history[-1]["s"] if history else 0.0)
    bar = tqdm(range(start, total), desc="grounding train", disable=rank != 0, initial=start, total=total)
    for step in bar:
        loss_sum = 0.0
        for _ in range(cfg.grad_accum):
            if cursor + cfg.batch_size > len(order):
                cursor = 0
                random.Random(cfg.seed + step).shuffle(order)
            batch_ex = [mine[i] for i in order[cursor:cursor + cfg.batch_size]]
            cursor += cfg.batch_size
            batch = make_batch(batch_ex, backbone, interleaver, cache)
            with autocast():
                loss = answer_loss(backbone, batch)
            if engine is not None:
                engine.backward(loss)
                engine.step()
            else:
                (loss / cfg.grad_accum).backward()
            loss_sum += float(loss.detach())
        if engine is None:
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            sched.step()
            optimizer.zero_grad(set_to_none=True)
        done = step + 1
        rec = {"step": done, "loss": loss_sum / cfg.grad_accum, "lr": sched.get_last_lr()[0],
               "s": round(time.time() - t0, 2)}
        if val and ((cfg.eval_every and done % cfg.eval_every == 0) or done == total):
            rec["val_loss"] = val_loss(backbone, model, val, interleaver, cache, cfg.batch_size, autocast)
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.4f}")
        if logf is not None and (done % cfg.log_every == 0 or done == total or "val_loss" in rec):
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
        if cfg.save_every and done % cfg.save_every == 0 and done < total:
            save_checkpoint(ckpt, model, optimizer, sched, engine, rank,
                            {"order": order, "cursor": cursor, "step": done})
    if logf is not None:
        logf.close()

    if use_ds:
        torch.distributed.barrier()
    if zero3:
        # every process takes part in gathering the partitioned weights; rank 0 writes them
        with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None):
            if rank == 0:
                save_trained(backbone, peft_model, cfg, out, interleaver)
    elif rank == 0:
        save_trained(backbone, peft_model, cfg, out, interleaver)
    if rank == 0:
        _plot_loss(history, out / "loss.png")
        if ckpt.is_dir():  # finished: nothing to resume any more
            import shutil

            shutil.rmtree(ckpt)
    if use_ds:
        torch.distributed.barrier()
    return out


def _read_log(path: Path, upto: int) -> list[dict]:
    if not upto or not path.is_file():
        return []
    out = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = [r for r in out if r["step"] <= upto]
    # keep the log consistent with the checkpoint: steps after it will be redone
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return out


def save_checkpoint(path: Path, model, optimizer, sched, engine, rank: int, client: dict) -> None:
    """Everything needed to continue: trainable weights, optimizer, schedule, data position.
    Written to a temporary directory and renamed, so a crash mid-save keeps the previous one."""
    import shutil

    import torch

    tmp = path.with_name(path.name + ".tmp")
    if engine is not None:
        engine.save_checkpoint(str(tmp), client_state=client)  # tag: global_stepN, named in its "latest" file
        torch.distributed.barrier()
    elif rank == 0:
        tmp.mkdir(parents=True, exist_ok=True)
        torch.save({"trainable": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
                    "optimizer": optimizer.state_dict(), "sched": sched.state_dict(), "client": client},
                   tmp / "state.pt")
    if rank == 0:
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    if engine is not None:
        torch.distributed.barrier()


def load_checkpoint(path: Path, model, optimizer, sched, engine, rank: int) -> dict:
    import torch

    if engine is not None:
        _, client = engine.load_checkpoint(str(path))
        if client is None:
            raise ValueError(f"{path}: not a DeepSpeed checkpoint of this run")
        return client
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"{path}: cannot resume from this checkpoint ({exc})") from None
    params = dict(model.named_parameters())
    missing = set(state["trainable"]) ^ {n for n, p in params.items() if p.requires_grad}
    if missing:
        raise ValueError(f"{path}: checkpoint does not match the model being trained ({sorted(missing)[:3]})")
    with torch.no_grad():
        for n, v in state["trainable"].items():
            params[n].copy_(v)
    optimizer.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["sched"])
    return state["client"]


def llm_modules(backbone):
    """The modules DeepSpeed wraps: LLM body (with LoRA), vocabulary head, projectors."""
    import torch.nn as nn

    mods = {"decoder": backbone.decoder, "lm_head": backbone.lm_head}
    for name in PROJECTORS:
        mod = getattr(backbone, name, None)
        mod = mod if mod is not None else getattr(backbone.core, name, None)
        if mod is not None:
            mods[name] = mod
    return nn.ModuleDict(mods)


def deepspeed_config(path, cfg: TrainConfig, *, bf16: bool, world: int) -> dict:
    """The shipped JSON with the run's values filled in where it says "auto"."""
    d = json.loads(Path(path).read_text())
    fill = {"train_micro_batch_size_per_gpu": cfg.batch_size, "gradient_accumulation_steps": cfg.grad_accum,
            "train_batch_size": cfg.batch_size * cfg.grad_accum * world, "gradient_clipping": 1.0}
    for k, v in fill.items():
        if d.get(k, "auto") == "auto":
            d[k] = v
    d.setdefault("bf16", {})
    if d["bf16"].get("enabled", "auto") == "auto":
        d["bf16"]["enabled"] = bool(bf16)
    # the optimizer is ours (torch AdamW): no DeepSpeed op to compile, same maths as without it
    d["zero_allow_untested_optimizer"] = True
    return d


def save_trained(backbone, peft_model, cfg: TrainConfig, out: Path, interleaver) -> None:
    """``adapter/`` (LoRA runs) and ``merged/``: a full checkpoint with the settings inference needs."""
    settings = {"granularity": cfg.granularity, "interleave": cfg.interleave,
                "prompt_format": interleaver.format.to_dict(), "hint_k": cfg.hint_k if cfg.hint_scorer else 0}
    if peft_model is not None and cfg.save_adapter:
        peft_model.save_pretrained(str(out / "adapter"))
        (out / "adapter" / "grounder_settings.json").write_text(
            json.dumps(settings | {"kind": backbone.kind, "base": backbone.name_or_path}, indent=2) + "\n")
    if cfg.save_merged:
        if peft_model is not None:
            backbone.model = peft_model.merge_and_unload()
        dec = backbone.decoder
        if getattr(dec, "gradient_checkpointing", False):
            (getattr(dec, "activation_checkpointing_disable", None) or dec.gradient_checkpointing_disable)()
        backbone.model.eval()
        backbone.settings.update(settings)
        backbone.save_pretrained(out / "merged")


def _plot_loss(history: list[dict], path: Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], lw=1, label="train")
    vals = [h for h in history if "val_loss" in h]
    if vals:
        ax.plot([h["step"] for h in vals], [h["val_loss"] for h in vals], "o-", label="held-out")
        ax.legend()
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("answer-token loss")
    ax.set_title("grounder training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
