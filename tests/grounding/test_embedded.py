"""The embedded backbone (frozen encoder + projector + small Qwen2 LM + query soft token), here
around a stand-in encoder with the scorer's interface: same layout guarantees, full training of
the LM only (encoder untouched), save -> offline reload with identical greedy output."""
from __future__ import annotations

import pytest
import torch

from grounding.backbones import load_backbone
from grounding.backbones.embedded import EmbeddedBackbone
from grounding.interleave import Interleaver, collate
from grounding.testing import StandInEncoder, check_layout, tone_clip, write_config

CFG = dict(encoder_class="grounding.testing:StandInEncoder", encoder_dim=32, hidden_size=64, num_layers=2,
           num_heads=2, num_kv_heads=1, intermediate_size=128, vocab_size=512)


@pytest.fixture(scope="module")
def embedded_dir(tmp_path_factory, toy_manifest):
    """`earmark grounding init-embedded` around a stand-in encoder, tokenizer trained with the toy labels."""
    from grounding.cli import main

    root = tmp_path_factory.mktemp("emb")
    StandInEncoder(32).save_pretrained(root / "enc")
    arch = write_config(root / "arch.json", **CFG)
    assert main(["init-embedded", "--encoder", str(root / "enc"), "--out", str(root / "init"), "--config", arch,
                 "--manifest", str(toy_manifest)]) == 0
    tok = load_backbone(root / "init").tokenizer
    assert len(tok("beeping tone", add_special_tokens=False).input_ids) <= 3  # corpus labels became tokens
    return root / "init"


@pytest.mark.parametrize("seconds,granularity", [(45.0, 0.2), (61.3, 1.0)])
def test_layout(embedded_dir, seconds, granularity):
    bb = load_backbone(embedded_dir)
    assert bb.kind == "embedded" and bb.frames_per_second == 25
    emb = bb.encode_audio(tone_clip(seconds, [(3.0, 4.0, 1000)]))
    assert emb.shape == (int(seconds * 25), 64)
    il = Interleaver(bb.tokenizer, granularity=granularity, fps=bb.frames_per_second,
                     prompt_format=bb.prompt_format(), placeholder_id=bb.audio_token_id)
    seq = il.sequence(emb.shape[0], "exist", "a dog barks", "No.")
    where = check_layout(seq, il, emb.shape[0])
    x = collate([seq], [emb], bb).inputs_embeds[0]
    assert all(torch.equal(x[p], emb[f]) for f, p in where.items())
    # the query soft token: the <|query|> position carries the query's sentence embedding
    q = [i for i, t in enumerate(seq.ids) if t == bb.query_token_id]
    assert len(q) == 1 and q[0] > seq.prefix_len
    other = collate([il.sequence(emb.shape[0], "exist", "glass breaking", "No.")], [emb], bb).inputs_embeds[0]
    plain = bb.model.get_input_embeddings()(torch.tensor(seq.ids))
    assert not torch.equal(x[q[0]], plain[q[0]])
    # callers that embed question ids without the query text (engines) get the same vectors: the
    # query is read back from the ids
    q_ids = torch.tensor(seq.ids[seq.prefix_len:])
    torch.testing.assert_close(bb.embed_text(q_ids), x[seq.prefix_len:])
    torch.testing.assert_close(bb.embed_text(q_ids[None].repeat(2, 1))[1], x[seq.prefix_len:])
    assert not torch.allclose(x[q[0]], other[q[0]])


def test_full_training_keeps_encoder_frozen_and_reloads(embedded_dir, toy_manifest, tmp_path, monkeypatch):
    from grounding.train import TrainConfig, train

    before = load_backbone(embedded_dir)
    enc_before = {k: v.clone() for k, v in before.encoder.state_dict().items()}
    lm_before = {k: v.clone() for k, v in before.model.state_dict().items()}
    out = train(TrainConfig(backbone=str(embedded_dir), output_dir=str(tmp_path / "run"), lora=False, lr=3e-3,
                            sources=[{"manifest": str(toy_manifest)}], max_steps=3, batch_size=2))
    assert not (out / "adapter").exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    after = load_backbone(out / "merged")
    for k, v in after.encoder.state_dict().items():
        assert torch.equal(v, enc_before[k]), f"encoder weight {k} changed"
    changed = {k for k, v in after.model.state_dict().items() if not torch.equal(v, lm_before[k])}
    assert any(k.startswith("lm.model.layers") for k in changed)
    assert any(k.startswith("projector") for k in changed) and any(k.startswith("query_projector") for k in changed)
    # save again and reload: identical greedy answers
    after.save_pretrained(tmp_path / "again")
    again = load_backbone(tmp_path / "again")
    il = Interleaver(after.tokenizer, fps=25, prompt_format=after.prompt_format(), placeholder_id=after.audio_token_id)
    outs = []
    for bb in (after, again):
        embs = [bb.encode_audio(tone_clip(s, [(1.0, 2.0, 1000)])) for s in (4.0, 5.5)]
        b = collate([il.sequence(e.shape[0], "ground", "beeping tone") for e in embs], embs, bb, padding_side="left")
        outs.append(bb.generate(b.inputs_embeds, b.attention_mask, max_new_tokens=10).tolist())
    assert outs[0] == outs[1]


def test_pooled_frames_and_chunks(embedded_dir, tmp_path):
    """pool_frames=5: 5 LM frames per second, each the mean of 5 encoder frames; 60 s chunks of a
    150 s file stitch without drift (same frames as one pass)."""
    import dataclasses

    bb = load_backbone(embedded_dir)
    wave = tone_clip(150.0, [(70.0, 75.0, 1000)])
    full = bb.audio_features(wave)
    assert full.shape[0] == 150 * 25
    _, one_pass = bb.encoder.audio_features(torch.from_numpy(wave)[None])
    # away from the seam (the first frames of a chunk see its edge), chunked == one pass: no drift
    torch.testing.assert_close(full[1505:1515], one_pass[0, 1505:1515], atol=1e-4, rtol=1e-4)
    pooled = EmbeddedBackbone(bb.model, bb.tokenizer, bb.encoder, dataclasses.replace(bb.config, pool_frames=5))
    assert pooled.frames_per_second == 5
    p = pooled.audio_features(wave)
    assert p.shape[0] == 750
    torch.testing.assert_close(p[300], full[1500:1505].mean(0))
