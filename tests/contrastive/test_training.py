"""Tiny end-to-end runs on synthetic tones: negatives, overfit, save/load, scorer, CLIs."""
import json
import random

import numpy as np
import pytest
import torch

from contrastive.config import ModelConfig, TrainConfig
from contrastive.data import Batcher, Clip, frame_labels
from contrastive.model import ScorerModel
from contrastive.phrases import build_sampler
from contrastive.toy import make_toy_sed

TINY_MODEL = {"audio": {"kind": "tcn", "window_seconds": 4.0, "n_fft": 512, "hop_length": 320, "time_pool": 2,
                        "channels": [32, 32, 32], "width": 48},
              "embed_dim": 48, "dense_head": "transformer", "dense_layers": 1}


def test_negatives_never_share_a_cluster_with_a_positive():
    queries = ["dog barking", "rain", "car horn", "a woman speaking", "glass breaking", "footsteps"]
    sampler, wordings = build_sampler(queries)
    rng = random.Random(0)
    for _ in range(200):
        pos = rng.sample(queries, rng.choice([1, 2, 3]))
        phrases, is_pos = sampler.fill(pos, 20, rng)
        assert len(phrases) == 20 and phrases[:len(pos)] == pos
        banned = {sampler.cluster(p) for p in pos}
        for p, y in zip(phrases, is_pos):
            if not y:
                assert sampler.cluster(p) not in banned, (p, pos)
    # a paraphrase of a positive is never its negative
    assert "a dog barks" in sampler.clusters.phrases() or True
    phrases, _ = sampler.fill(["dog barking"], 20, rng)
    assert sampler.cluster("a dog barks") == sampler.cluster("dog barking")
    assert "a dog barks" not in phrases[1:]


def test_batch_labels_follow_event_windows():
    lab = frame_labels([("beep", 1.0, 2.0)], ["beep", "other"], 100, 25.0)
    on = np.flatnonzero(lab[0])
    assert on[0] == 25 and on[-1] == 49 and lab[1].sum() == 0


def test_batcher_shapes_and_negatives(tmp_path):
    cfg = ModelConfig.from_dict(TINY_MODEL).audio
    sampler, wordings = build_sampler(["dog barking", "rain"])
    mel = np.zeros((cfg.n_mels, 200), np.float16)
    clips = [Clip("a", mel, [("dog barking", 0.5, 1.5)], "a dog barks"), Clip("b", mel, [], "rain falls")]
    b = Batcher(clips, cfg, sampler, 20, wordings, augment=True, seed=0).make(clips)
    assert b["mel"].shape == (2, 64, 200) and b["labels"].shape == (2, 20, 100)
    assert b["mask"][0].all() and not b["mask"][1].any()          # caption-only: no frame terms
    assert b["labels"][0, 0].sum() == 25 and b["labels"][0, 1:].sum() == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """30 steps on 8 toy clips (the done-when overfit run), saved."""
    from contrastive.train import train

    root = tmp_path_factory.mktemp("toy")
    m = make_toy_sed(root / "data", 8, seconds=4.0, seed=3)
    cfg = TrainConfig.from_dict({"train": [str(m)], "val": str(m), "val_split": None, "steps": 30, "batch_size": 8, "lr": 3e-3,
                                 "warmup_steps": 3, "eval_every": 30, "save_every": 30, "num_threads": 1,
                                 "augment": False, "model": TINY_MODEL,
                                 "loss": {"n_phrases": 6, "chunk_size": 4, "frame_weight": 20.0}})
    torch.manual_seed(0)
    summary = train(cfg, root / "run", progress=False)
    return root, m, summary


def test_overfit_8_clips_frame_auroc(trained):
    root, _, summary = trained
    auroc = summary["history"][-1]["frame_auroc"]
    assert auroc > 0.95, summary


def test_save_load_round_trip_exact(trained, tmp_path):
    root, _, _ = trained
    a = ScorerModel.from_pretrained(root / "run")
    a.save_pretrained(tmp_path / "copy")
    b = ScorerModel.from_pretrained(tmp_path / "copy")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    wave = torch.randn(2, 16000 * 3) * 0.1
    with torch.inference_mode():
        ga, da = a.encode_audio(wave)
        gb, db = b.encode_audio(wave)
    assert torch.equal(ga, gb) and torch.equal(da, db)
    meta = json.loads((root / "run" / "config.json").read_text())
    assert meta["run"]["steps"] == 30 and meta["model"]["embed_dim"] == 48
    # the frozen MiniLM is not in the checkpoint
    from safetensors.torch import load_file

    assert not any(k.startswith("text.encoder.") for k in load_file(str(root / "run" / "model.safetensors")))


def test_resume_continues_from_saved_step(trained, tmp_path):
    from contrastive.train import STATE_NAME, train

    root, m, _ = trained
    cfg = TrainConfig.from_dict({"train": [str(m)], "steps": 4, "batch_size": 4, "warmup_steps": 1,
                                 "eval_every": 2, "save_every": 2, "num_threads": 1, "model": TINY_MODEL,
                                 "loss": {"n_phrases": 6}})
    out = tmp_path / "r"
    cfg.steps = 2
    train(cfg, out, progress=False)
    assert torch.load(out / STATE_NAME, weights_only=False)["step"] == 2
    cfg.steps = 4
    s = train(cfg, out, resume=True, progress=False)
    assert s["steps"] == 4 and torch.load(out / STATE_NAME, weights_only=False)["step"] == 4


def test_scorer_events_and_stitching(trained):
    from contrastive.scorer import Scorer
    from data_recipes.audio import load_audio
    from data_recipes.formats import ManifestRecord, read_jsonl

    root, m, _ = trained
    sc = Scorer.from_pretrained(root / "run", window=4.0, hop=2.0)
    rec = read_jsonl(m, ManifestRecord)[0]
    y = load_audio(m.parent / rec.audio)
    q = rec.events[0].query
    fs = sc.frame_scores(y, [q, "rising chirp" if q != "rising chirp" else "clicking"])
    assert fs.scores.shape == (2, 100) and np.isfinite(fs.scores).all()
    # inside the event the phrase scores higher than outside
    t = fs.times()
    inside = (t >= rec.events[0].start) & (t < rec.events[0].end)
    assert fs.scores[0, inside].mean() > fs.scores[0, ~inside].mean()
    # a long file (the clip tiled 5x) stitches to the right length, audio encoded once for all phrases
    long = np.tile(y, 5)
    emb = sc.embed(long)
    assert emb.n_frames == 500
    a = sc.frame_scores(emb, [q]).scores[0]
    b = sc.frame_scores(emb, [q, "clicking"]).scores[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    cands = sc.candidates(emb, q, k=3)
    assert 1 <= len(cands) <= 3 and all(0 <= s < e <= 20.0 for s, e, _ in cands)
    assert cands == sorted(cands, key=lambda c: -c[2])
    assert 0.0 <= sc.exists(emb, q) <= 1.0
    with pytest.raises(ValueError, match="empty"):
        sc.frame_scores(emb, [" "])


def test_detect_cli_prints_intervals_and_plots(trained, tmp_path, capsys):
    from contrastive.cli import detect_main

    root, m, _ = trained
    audio = m.parent / "audio" / "toy-0000.flac"
    png = tmp_path / "curves.png"
    rc = detect_main([str(audio), "beeping tone", "clicking", "--model", str(root / "run"), "--json",
                      "--plot", str(png), "--top-k", "2"])
    assert rc == 0 and png.stat().st_size > 1000
    out = json.loads(capsys.readouterr().out)
    assert [p["phrase"] for p in out["phrases"]] == ["beeping tone", "clicking"]
    assert len(out["phrases"][0]["candidates"]) == 2
    bad = tmp_path / "bad.flac"
    bad.write_text("not audio")
    assert detect_main([str(bad), "x", "--model", str(root / "run")]) == 1  # an input error; 2 is for usage
    assert "bad.flac" in capsys.readouterr().err


def test_contrastive_eval_writes_scores(trained, tmp_path):
    from contrastive.cli import main

    root, m, _ = trained
    rc = main(["eval", str(root / "run"), str(m), "--out", str(tmp_path / "ev"), "--limit", "3"])
    assert rc == 0
    assert len(list((tmp_path / "ev" / "scores").glob("*.tsv"))) == 3
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert 0.0 <= metrics["frame_auroc"] <= 1.0


def test_calibrate_stores_inference_settings(trained, tmp_path, capsys):
    import shutil

    from contrastive.cli import main
    from contrastive.scorer import Scorer

    root, m, _ = trained
    ck = tmp_path / "ck"
    shutil.copytree(root / "run", ck)
    assert main(["calibrate", str(ck), str(m), "--split", "train", "--limit", "4", "--window", "4",
                 "--hop", "2"]) == 0
    sc = Scorer.from_pretrained(ck)
    assert sc.window == 4.0 and sc.hop == 2.0 and sc.median_seconds == 0.28
    cal = sc.existence_calibration
    assert cal["n"] > 0 and cal["n"] % 4 == 0 and set(cal) >= {"a", "b", "auroc"}
    # the filters are stored with the calibration fitted on scores filtered by them
    assert main(["calibrate", str(ck), str(m), "--split", "train", "--limit", "4", "--window", "4",
                 "--hop", "2", "--median-seconds", "0.6", "--exists-median-seconds", "0.12"]) == 0
    sc = Scorer.from_pretrained(ck)
    assert (sc.median_seconds, sc.exists_median_seconds) == (0.6, 0.12)
    assert main(["calibrate", str(ck), str(m), "--median-seconds", "-1"]) == 2
    assert "argument --median-seconds: must be in [0, 10] seconds, got -1" in capsys.readouterr().err
    # usage errors exit 2, runtime errors (a missing file) 1, both as `earmark contrastive CMD: error: ...`
    assert main(["calibrate", str(ck), str(m), "--window", "1e9"]) == 2
    assert "--window" in capsys.readouterr().err
    assert main(["calibrate", str(ck), str(root / "missing.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("earmark contrastive calibrate: error:") and "missing.jsonl" in err


def test_scorer_is_an_eval_predictor(trained):
    from contrastive.scorer import Scorer
    from data_recipes.formats import ManifestRecord, QueryRecord, read_jsonl

    root, m, _ = trained
    sc = Scorer.from_pretrained(root / "run", window=4.0, hop=2.0)
    rec = read_jsonl(m, ManifestRecord)[0]
    qs = [QueryRecord("q1", rec.id, rec.events[0].query, False, [(rec.events[0].start, rec.events[0].end)]),
          QueryRecord("q2", rec.id, "a completely different sound", True, [])]
    preds = sc.predict(m.parent / rec.audio, qs)
    assert [p.id for p in preds] == ["q1", "q2"]
    for p in preds:
        assert p.engine == "scorer" and 0.0 <= p.score <= 1.0
        assert all(0 <= s < e <= rec.duration + 1e-6 for s, e, _ in p.windows)
        assert p.exists == (p.score >= 0.5)
