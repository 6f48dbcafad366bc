"""`earmark grounding ...`: train the grounder. Parses arguments and calls the library.

    earmark grounding train CONFIG.json [--output-dir DIR] [--max-steps N] [--deepspeed zero2.json]
    earmark grounding init-embedded --encoder SCORER_DIR --out DIR [--config arch.json] [--manifest M ...]
    earmark grounding init-embedded-lm --encoder SCORER_DIR --out DIR [--config lm_arch.json] [--base-lm SPEC]

Multi-process (DeepSpeed; on CPU add DS_ACCELERATOR=cpu):
    torchrun --nproc_per_node 2 -m grounding.cli train CONFIG.json --deepspeed grounding/configs/zero2.json
"""
from __future__ import annotations

import argparse
import logging
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="earmark grounding", description="train / export the audio-LLM grounder")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="fine-tune a backbone on instruction data built from manifests")
    t.add_argument("config", help="training config JSON (grounding.train.TrainConfig fields)")
    t.add_argument("--output-dir", help="override output_dir")
    t.add_argument("--max-steps", type=int, help="override max_steps")
    t.add_argument("--backbone", help="override backbone (path or hub id)")
    t.add_argument("--hint-scorer", help="override hint_scorer: scorer checkpoint whose candidates are written "
                                         "into grounding questions ('default': the package's)")
    t.add_argument("--no-interleave", action="store_true",
                   help="leave the timestamps out of the audio tokens (the paper's Table 7 ablation)")
    t.add_argument("--deepspeed", help="DeepSpeed JSON config (grounding/configs/zero2.json, zero3.json)")
    t.add_argument("--source", action="append", default=None, metavar="MANIFEST[:WEIGHT]",
                   help="replace the config's sources (repeatable), e.g. --source short.jsonl:1 --source long.jsonl:2")
    t.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed launcher
    e = sub.add_parser("init-embedded", help="write an untrained embedded grounder around a trained scorer encoder")
    e.add_argument("--encoder", required=True, help="encoder checkpoint directory (a scorer: earmark contrastive train)")
    e.add_argument("--out", required=True, help="output directory (then: earmark grounding train with backbone=OUT)")
    e.add_argument("--config", help="EmbeddedConfig JSON (architecture); defaults otherwise")
    e.add_argument("--manifest", action="append", default=[],
                   help="manifest(s) whose event labels and captions the tokenizer is also trained on")
    e.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("init-embedded-lm", help="write an untrained grounder on a pretrained LM (LoRA) around a "
                                                "trained scorer encoder")
    m.add_argument("--encoder", required=True, help="encoder checkpoint directory (a scorer: earmark contrastive train)")
    m.add_argument("--out", required=True, help="output directory (then: earmark grounding train with backbone=OUT)")
    m.add_argument("--config", help="EmbeddedLMConfig JSON (grounding/configs/embedded_lm_arch.json); defaults otherwise")
    m.add_argument("--base-lm", help="override base_lm: wheel:NAME, a .gguf file, a model directory or a hub id")
    m.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "train":
        from .train import TrainConfig, train

        try:
            sources = [_source(s) for s in args.source] if args.source else None
            cfg = TrainConfig.from_json(args.config, output_dir=args.output_dir, max_steps=args.max_steps,
                                        backbone=args.backbone, deepspeed=args.deepspeed, sources=sources,
                                        hint_scorer=args.hint_scorer,
                                        interleave=False if args.no_interleave else None)
        except (ValueError, FileNotFoundError) as exc:
            print(f"earmark grounding train: error: {exc}", file=sys.stderr)
            return 2
        try:
            out = train(cfg)
        except ValueError as exc:   # a setting the chosen backbone refuses (e.g. lora: false for embedded-lm)
            print(f"earmark grounding train: error: {exc}", file=sys.stderr)
            return 2
        print(f"saved to {out}")
        return 0
    if args.cmd == "init-embedded":
        return _init_embedded(args)
    if args.cmd == "init-embedded-lm":
        return _init_embedded_lm(args)
    return 2


def _source(spec: str) -> dict:
    path, sep, weight = spec.rpartition(":")
    if not sep or not weight.replace(".", "", 1).isdigit():
        return {"manifest": spec}
    return {"manifest": path, "weight": float(weight)}


def _init_embedded(args) -> int:
    import json
    from pathlib import Path

    from data_recipes.formats import ManifestRecord, iter_jsonl

    from .backbones.embedded import EmbeddedBackbone, EmbeddedConfig

    try:
        cfg = EmbeddedConfig(**json.loads(Path(args.config).read_text())) if args.config else EmbeddedConfig()
        texts = []
        for m in args.manifest:
            for r in iter_jsonl(m, ManifestRecord):
                texts += [e.query for e in r.events] + ([r.caption] if r.caption else [])
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"earmark grounding init-embedded: {exc}", file=sys.stderr)
        return 2
    bb = EmbeddedBackbone.init_checkpoint(args.out, encoder_dir=args.encoder, cfg=cfg, texts=texts, seed=args.seed)
    n = sum(p.numel() for p in bb.model.parameters())
    print(f"wrote {args.out}: {n / 1e6:.2f}M trainable-side parameters, vocabulary {len(bb.tokenizer)}")
    return 0


def _init_embedded_lm(args) -> int:
    import json
    from pathlib import Path

    from .backbones.embedded_lm import EmbeddedLMBackbone, EmbeddedLMConfig

    try:
        fields = json.loads(Path(args.config).read_text()) if args.config else {}
        if args.base_lm:
            fields["base_lm"] = args.base_lm
        cfg = EmbeddedLMConfig(**fields)
        bb = EmbeddedLMBackbone.init_checkpoint(args.out, encoder_dir=args.encoder, cfg=cfg, seed=args.seed)
    except (ValueError, TypeError, FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"earmark grounding init-embedded-lm: {exc}", file=sys.stderr)
        return 2
    lm = sum(p.numel() for p in bb.core.lm.parameters())
    proj = sum(p.numel() for n, p in bb.core.named_parameters() if not n.startswith("lm."))
    print(f"wrote {args.out}: base LM {bb.config.base_lm} ({lm / 1e6:.1f}M parameters, frozen), "
          f"projector {proj / 1e6:.2f}M parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
