"""The embedded grounder's score channel: audio tokens conditioned on the query through the frozen
scorer's own frame probabilities. Checked against the scorer computed directly, through training
(the score projector learns, the encoder does not), save/reload, and the pipeline, which must build
one audio prefix per query and give the same answers whether queries come one by one or together."""
from __future__ import annotations

import pytest
import torch

from grounding.backbones import load_backbone
from grounding.testing import tone_clip, write_config

TINY_SCORER = {"audio": {"kind": "tcn", "window_seconds": 4.0, "n_fft": 512, "hop_length": 320, "time_pool": 2,
                         "channels": [16, 16], "width": 24},
               "embed_dim": 16, "dense_head": "linear"}
ARCH = dict(encoder_class="contrastive.model:ScorerModel", hidden_size=64, num_layers=2, num_heads=2,
            num_kv_heads=1, intermediate_size=128, vocab_size=512, pool_frames=5, score_channel=True)


@pytest.fixture(scope="module")
def sc_dir(tmp_path_factory, toy_manifest):
    from contrastive.model import create_model
    from grounding.cli import main

    root = tmp_path_factory.mktemp("sc")
    torch.manual_seed(0)
    scorer, _ = create_model(TINY_SCORER)
    with torch.no_grad():  # a scorer that is not indifferent: scores vary along the clip
        scorer.frame_logit_bias.fill_(0.0)
    scorer.save_pretrained(root / "scorer")
    assert main(["init-embedded", "--encoder", str(root / "scorer"), "--out", str(root / "init"),
                 "--config", write_config(root / "arch.json", **ARCH), "--manifest", str(toy_manifest)]) == 0
    return root / "init"


def test_score_features_are_the_scorers_own_frame_probabilities(sc_dir):
    bb = load_backbone(sc_dir)
    assert bb.query_conditioned_audio and bb.frames_per_second == 5
    wave = tone_clip(7.3, [(2.0, 3.0, 1000)])
    feats = bb.audio_features(wave)
    assert feats.shape[0] == 36  # 7.3 s at 5 frames/s, no partial frame
    sf = bb.score_features(feats, "beeping tone")
    enc = bb.encoder
    with torch.no_grad():
        _, dense = enc.encode_audio(torch.from_numpy(wave)[None])
        text = enc.encode_text(["beeping tone"])
        p = enc.frame_probs(enc.frame_logits(dense, text), text)[0, 0, :180].reshape(36, 5)
    torch.testing.assert_close(sf[:, 0], p.mean(1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(sf[:, 1], p.max(1).values, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(sf[:, 3].max(), torch.tensor(1.0))
    assert float(sf[:, 0].std()) > 0


def test_audio_tokens_depend_on_the_query_and_need_one(sc_dir):
    bb = load_backbone(sc_dir)
    wave = tone_clip(6.0, [(1.0, 2.0, 1000)])
    a, b = bb.encode_audio(wave, "beeping tone"), bb.encode_audio(wave, "dog barking")
    assert a.shape == (30, 64) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="conditioned on the query"):
        bb.encode_audio(wave)


def test_training_learns_the_score_projector_and_reloads(sc_dir, toy_manifest, tmp_path, monkeypatch):
    from grounding.interleave import Interleaver, collate
    from grounding.train import TrainConfig, train

    before = load_backbone(sc_dir)
    enc_before = {k: v.clone() for k, v in before.encoder.state_dict().items()}
    sp_before = {k: v.clone() for k, v in before.core.score_projector.state_dict().items()}
    out = train(TrainConfig(backbone=str(sc_dir), output_dir=str(tmp_path / "run"), lora=False, lr=3e-3,
                            sources=[{"manifest": str(toy_manifest)}], max_steps=2, batch_size=2))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    after = load_backbone(out / "merged")
    assert all(torch.equal(v, enc_before[k]) for k, v in after.encoder.state_dict().items())
    assert any(not torch.equal(v, sp_before[k]) for k, v in after.core.score_projector.state_dict().items())
    again_dir = tmp_path / "again"
    after.save_pretrained(again_dir)
    again = load_backbone(again_dir)
    il = Interleaver(after.tokenizer, fps=5, prompt_format=after.prompt_format(), placeholder_id=after.audio_token_id)
    outs = []
    for bb in (after, again):
        embs = [bb.encode_audio(tone_clip(s, [(1.0, 2.0, 1000)]), q) for s, q in ((4.0, "beeping tone"), (5.5, "dog"))]
        seqs = [il.sequence(e.shape[0], "ground", q) for e, q in zip(embs, ("beeping tone", "dog"))]
        b = collate(seqs, embs, bb, padding_side="left")
        outs.append(bb.generate(b.inputs_embeds, b.attention_mask, max_new_tokens=8).tolist())
    assert outs[0] == outs[1]


def test_pipeline_builds_one_prefix_per_query(sc_dir):
    from grounding.engines.hf import HfEngine
    from grounding.pipeline import Pipeline, PipelineConfig

    bb = load_backbone(sc_dir)
    engine = HfEngine(bb)
    prepared = []
    real = engine.prepare
    engine.prepare = lambda emb: prepared.append(emb.clone()) or real(emb)
    pipe = Pipeline(PipelineConfig(mode="llm", probe_ground=True), backbone=bb, engine=engine)
    wave = tone_clip(8.0, [(2.0, 4.0, 1000)])
    queries = ["beeping tone", "dog barking", "glass breaking"]
    together = pipe.ask_many(wave, queries)
    assert len(prepared) == 3 and not torch.allclose(prepared[0], prepared[1])
    alone = [pipe.ask(wave, q) for q in queries]
    assert [a.raw for a in together] == [a.raw for a in alone]
    assert [a.probe for a in together] == [a.probe for a in alone]


def test_training_with_scorer_hints(sc_dir, toy_manifest, tmp_path):
    """hint_scorer: every grounding question carries that scorer's top candidates (as the pipeline
    computes them), the trained checkpoint says so (settings hint_k), and the pipeline then hints."""
    import random

    from contrastive.scorer import Scorer
    from grounding.train import TrainConfig, build_examples, train

    scorer_dir = sc_dir.parent / "scorer"
    cfg = TrainConfig(backbone=str(sc_dir), output_dir=str(tmp_path / "run"), lora=False, lr=3e-3,
                      sources=[{"manifest": str(toy_manifest)}], max_steps=1, batch_size=2,
                      hint_scorer=str(scorer_dir), hint_k=2)
    exs = build_examples(cfg, random.Random(cfg.seed))
    scorer = Scorer.from_pretrained(scorer_dir)
    ground = [e for e in exs if e.stage == "ground"]
    assert ground and all(e.hint is None for e in exs if e.stage == "exist")
    for e in ground[:3]:
        want = [(a, b) for a, b, _ in scorer.candidates(scorer.embed(e.audio), e.query, k=2)]
        assert e.hint == want
    out = train(cfg)
    bb = load_backbone(out / "merged")
    assert bb.settings["hint_k"] == 2
    with pytest.raises(ValueError, match="hint_k"):
        TrainConfig(backbone="x", output_dir="y", sources=[{"manifest": "m"}], hint_k=0)


@pytest.mark.parametrize("kind", ["zeroshot", "trained"])
def test_score_channel_on_a_scorer_with_a_pretrained_trunk(tmp_path, toy_manifest, kind):
    """The grounder's frozen encoder and score channel work with the YAMNet scorers too: the score
    features are that scorer's own frame probabilities, and the encoder round-trips with the grounder."""
    from contrastive.yamnet_scorer import YamnetScorerConfig, YamnetScorerModel
    from grounding.cli import main

    torch.manual_seed(0)
    scorer = YamnetScorerModel(YamnetScorerConfig(kind=kind, hidden=16, embed_dim=8, fine_stream=kind == "trained",
                                                  fine_channels=4))
    scorer.save_pretrained(tmp_path / "scorer")
    arch = dict(ARCH, encoder_class="contrastive.model:ScorerModel")
    assert main(["init-embedded", "--encoder", str(tmp_path / "scorer"), "--out", str(tmp_path / "init"),
                 "--config", write_config(tmp_path / "arch.json", **arch), "--manifest", str(toy_manifest)]) == 0
    bb = load_backbone(tmp_path / "init")
    wave = tone_clip(4.2, [(1.0, 2.0, 1000)])
    feats = bb.audio_features(wave)
    assert feats.shape == (21, 1024 + 5 * scorer.joint_dim)
    sf = bb.score_features(feats, "beeping tone")
    enc = bb.encoder
    with torch.no_grad():
        _, dense = enc.encode_audio(torch.from_numpy(wave)[None])
        text = enc.encode_text(["beeping tone"])
        p = enc.frame_probs(enc.frame_logits(dense, text), text)[0, 0, :105].reshape(21, 5)
    torch.testing.assert_close(sf[:, 1], p.max(1).values, atol=1e-5, rtol=1e-4)
    assert bb.encode_audio(wave, "beeping tone").shape == (21, 64)
