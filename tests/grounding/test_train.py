"""Training on tiny random Qwen2-Audio and AF3: labels cover answers only, a LoRA step changes only
LoRA weights, and merge -> save -> offline reload gives the same greedy answers."""
from __future__ import annotations

import json
import random

import pytest
import torch

from grounding.backbones import load_backbone
from grounding.data import quadruplets
from grounding.interleave import IGNORE, Interleaver
from grounding.testing import KINDS
from grounding.train import AudioCache, TrainConfig, answer_loss, make_batch, prepare_model

from grounding.testing import write_config


def _examples(manifest):
    quads = quadruplets(manifest, rng=random.Random(0))
    return [ex for q in quads for ex in q.examples()]


@pytest.mark.parametrize("kind", KINDS)
def test_labels_mask_everything_but_answers(compact_dirs, toy_manifest, kind):
    bb = load_backbone(compact_dirs[kind])
    il = Interleaver(bb.tokenizer, fps=bb.frames_per_second, placeholder_id=bb.audio_token_id)
    exs = _examples(toy_manifest)[:6]
    batch = make_batch(exs, bb, il, AudioCache(bb))
    end = il.format.answer_end
    for b, ex in enumerate(exs):
        lab = batch.labels[b]
        keep = lab != IGNORE
        n = int(keep.sum())
        answer_ids = il.tok(ex.answer + end)
        assert n == len(answer_ids)
        row_len = int(batch.attention_mask[b].sum())
        # right padding: the answer is the last n real tokens, and nothing else is labelled
        assert keep[row_len - n:row_len].all() and not keep[:row_len - n].any() and not keep[row_len:].any()
        assert lab[keep].tolist() == batch.ids[b, row_len - n:row_len].tolist() == answer_ids
        assert bb.tokenizer.decode(lab[keep].tolist()) == ex.answer + end
        assert (batch.frame[b][keep] < 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_lora_step_changes_only_lora_weights(compact_dirs, toy_manifest, tmp_path, kind):
    bb = load_backbone(compact_dirs[kind])
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    cfg = TrainConfig(backbone=str(compact_dirs[kind]), output_dir=str(tmp_path), sources=[{"manifest": str(toy_manifest)}])
    model, peft_model = prepare_model(bb, cfg)
    lora_names = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora_names and all("language_model" in n for n in lora_names), "LoRA must stay out of the audio tower"
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(lora_names)
    il = Interleaver(bb.tokenizer, fps=bb.frames_per_second, placeholder_id=bb.audio_token_id)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = answer_loss(bb, make_batch(_examples(toy_manifest)[:4], bb, il, AudioCache(bb)))
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    after = {n: p for n, p in model.named_parameters()}
    changed_lora = [n for n in lora_names if "lora_B" in n and after[n].abs().sum() > 0]
    assert len(changed_lora) == len([n for n in lora_names if "lora_B" in n])
    for name, p in after.items():
        if "lora_" in name:
            continue
        base_name = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
        assert torch.equal(p.detach(), before[base_name]), f"{name} changed"


@pytest.mark.parametrize("kind", KINDS)
def test_train_cli_merge_save_offline_reload(compact_dirs, toy_manifest, tmp_path, monkeypatch, kind):
    from peft import PeftModel

    from grounding.cli import main

    out = tmp_path / "run"
    cfg = write_config(tmp_path / "cfg.json", backbone=str(compact_dirs[kind]), output_dir=str(out),
                       sources=[{"manifest": str(toy_manifest), "weight": 1.0}], max_steps=3, lr=5e-3,
                       batch_size=2, log_every=1)
    assert main(["train", cfg]) == 0
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "loss.png").is_file()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["loss"] > 0 for r in log)
    adapter_cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(compact_dirs[kind])

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    merged = load_backbone(out / "merged")
    assert merged.kind == kind and merged.settings["granularity"] == 1.0
    # the adapter on the base model, unmerged
    base = load_backbone(compact_dirs[kind])
    base.model = PeftModel.from_pretrained(base.model, str(out / "adapter")).eval()
    # LoRA really moved the weights
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.model.state_dict()[q], load_backbone(compact_dirs[kind]).model.state_dict()[q])

    il = Interleaver(merged.tokenizer, fps=merged.frames_per_second, placeholder_id=merged.audio_token_id)
    from grounding.interleave import collate
    from grounding.testing import tone_clip

    for bb_ in (merged, base):
        bb_.model.eval()
    waves = [tone_clip(4.0, [(1.0, 2.0, 1000)]), tone_clip(6.3, [], seed=1)]
    answers = []
    for bb_ in (merged, base):
        embs = [bb_.encode_audio(w) for w in waves]
        seqs = [il.sequence(e.shape[0], "ground", "beeping tone") for e in embs]
        b = collate(seqs, embs, bb_, padding_side="left")
        answers.append(bb_.generate(b.inputs_embeds, b.attention_mask, max_new_tokens=12).tolist())
    assert answers[0] == answers[1]


def test_resume_after_crash_and_held_out_loss(compact_dirs, toy_manifest, tmp_path, monkeypatch):
    """A run killed after step 3 and restarted continues from its step-2 checkpoint and ends with
    the same weights as an uninterrupted run; held-out answer loss is logged."""
    import grounding.train as gt
    from safetensors.torch import load_file

    def run(out, crash_at=None):
        cfg = TrainConfig(backbone=str(compact_dirs["qwen2-audio"]), output_dir=str(out), lr=5e-3, lora_dropout=0.0,
                          sources=[{"manifest": str(toy_manifest)}], val_sources=[{"manifest": str(toy_manifest)}],
                          val_examples=4, eval_every=2, max_steps=4, save_every=2, batch_size=1, save_merged=False, log_every=1)
        calls = {"n": 0}
        real = gt.answer_loss

        def flaky(bb, batch):
            calls["n"] += 1
            if crash_at is not None and calls["n"] == crash_at:
                raise KeyboardInterrupt("simulated crash")
            return real(bb, batch)

        monkeypatch.setattr(gt, "answer_loss", flaky)
        return gt.train(cfg)

    ref = run(tmp_path / "ref")
    with pytest.raises(KeyboardInterrupt):
        # calls: step 1, step 2, 4 held-out batches (checkpoint), step 3, step 4 <- dies here
        run(tmp_path / "crash", crash_at=8)
    assert (tmp_path / "crash" / "checkpoint").is_dir()
    again = run(tmp_path / "crash")
    assert not (again / "checkpoint").exists()
    a = load_file(str(ref / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(again / "adapter" / "adapter_model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    log = [json.loads(line) for line in (again / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert "val_loss" in log[1] and "val_loss" in log[3] and log[3]["val_loss"] > 0


def test_stages_select_the_instruction_examples(toy_manifest, tmp_path):
    import random

    from grounding.train import TrainConfig, build_examples

    def kinds(stages):
        cfg = TrainConfig(backbone="x", output_dir=str(tmp_path), sources=[{"manifest": str(toy_manifest)}], stages=stages)
        return {e.stage for e in build_examples(cfg, random.Random(0))}

    assert kinds(["exist"]) == {"exist"} and kinds(["ground"]) == {"ground"} and kinds(["exist", "ground"]) == {"exist", "ground"}
    with pytest.raises(ValueError, match="stages"):
        TrainConfig(backbone="x", output_dir=str(tmp_path), sources=[{"manifest": str(toy_manifest)}], stages=["answer"])


def test_train_cli_no_interleave_is_saved_and_used(compact_dirs, toy_manifest, tmp_path):
    """--no-interleave (the Table 7 ablation) trains without timestamps, and the checkpoint says
    so: the pipeline then prompts it without them too."""
    from grounding.cli import main
    from grounding.pipeline import interleaver_for

    kind = KINDS[0]
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "cfg.json", backbone=str(compact_dirs[kind]), output_dir=str(out),
                       sources=[{"manifest": str(toy_manifest), "weight": 1.0}], max_steps=1, batch_size=2)
    assert main(["train", cfg, "--no-interleave"]) == 0
    assert json.loads((out / "train_config.json").read_text())["interleave"] is False
    merged = load_backbone(out / "merged")
    assert merged.settings["interleave"] is False
    il = interleaver_for(merged)
    ids, _ = il.prefix(50)
    assert "timestamp" not in merged.tokenizer.decode(ids)
    assert "timestamp" in merged.tokenizer.decode(interleaver_for(load_backbone(compact_dirs[kind])).prefix(50)[0])
