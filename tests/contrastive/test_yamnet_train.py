"""The YAMNet head recipe end to end on the shipped examples: features cached, a few steps
trained (fine stream on), the best checkpoint reloads as a Scorer, resume continues."""
import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """Three 'train' clips and one 'val' clip cut from the shipped examples, events from its jsonl."""
    from data_recipes.audio import load_audio, save_audio

    d = tmp_path_factory.mktemp("yam")
    y = load_audio(DATA / "yamnet_examples.flac", sr=16000)
    rows = [json.loads(x) for x in (DATA / "yamnet_examples.jsonl").read_text().splitlines()]
    cuts = [(0.0, 5.9), (5.9, 9.2), (9.2, 15.74), (0.0, 9.2)]
    recs = []
    for i, (a, b) in enumerate(cuts):
        name = f"audio/c{i}.flac"
        (d / "audio").mkdir(exist_ok=True)
        save_audio(d / name, y[int(a * 16000):int(b * 16000)], 16000)
        ev = [{"query": r["query"], "start": round(max(r["start"], a) - a, 2), "end": round(min(r["end"], b) - a, 2)}
              for r in rows if r["end"] > a and r["start"] < b]
        recs.append({"id": f"c{i}", "audio": name, "duration": round(b - a, 3), "events": ev,
                     "split": "val" if i == 3 else "train"})
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[:3]))
    (d / "val.jsonl").write_text(json.dumps(recs[3]) + "\n")
    return d


def test_train_a_few_steps_and_reload(manifests, tmp_path):
    from contrastive.scorer import Scorer
    from contrastive.yamnet_train import YamnetTrainConfig, train

    cfg = YamnetTrainConfig(
        model={"kind": "trained", "hidden": 32, "embed_dim": 16, "fine_stream": True, "fine_channels": 8},
        train=[str(manifests / "train.jsonl")], val=str(manifests / "val.jsonl"), held_out=["piano"],
        cache_dir=str(tmp_path / "cache"), steps=40, batch_size=2, n_phrases=6, lr=3e-3,
        eval_every=20, save_every=20, num_threads=1)
    res = train(cfg, tmp_path / "run")
    assert res["step"] == 40
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [20, 40]
    assert sorted((tmp_path / "cache").glob("*-mel.npz"))                  # the fine stream was cached
    s = Scorer.from_pretrained(tmp_path / "run")
    fs = s.frame_scores(str(DATA / "yamnet_examples.flac"), ["dog barking", "piano"])
    assert fs.scores.shape == (2, int(15.74 * 25)) and np.isfinite(fs.scores).all()
    # resuming at the end trains nothing more and keeps the step
    assert train(cfg, tmp_path / "run", resume=True)["step"] == 40


def test_held_out_classes_never_reach_training(manifests, tmp_path):
    from contrastive.yamnet_scorer import YamnetScorerConfig, YamnetScorerModel
    from contrastive.yamnet_train import FeatureClips, cache_features

    m = YamnetScorerModel(YamnetScorerConfig(kind="trained", hidden=8, embed_dim=8))
    feats = cache_features(manifests / "train.jsonl", m, tmp_path, split="train")
    data = FeatureClips([feats], {"piano"})
    assert "piano" not in data.vocab
    kept = [feats["ids"][i] for _, i in data.items]
    assert kept == ["c0", "c1"]                 # c2 holds the piano: dropped whole


def test_bad_training_config_names_the_field():
    from contrastive.yamnet_train import YamnetTrainConfig

    with pytest.raises(ValueError, match="kind"):
        YamnetTrainConfig(model={"kind": "zeroshot"}, train=["x"], val="y")
    with pytest.raises(ValueError, match="train and val"):
        YamnetTrainConfig()


def _synthetic_part(durations, events, beds, hop=0.16):
    """Cached-feature layout of clips with the given durations (random features)."""
    rng = np.random.default_rng(0)
    n = [1 + int(round(d / hop)) for d in durations]
    return {"emb": rng.standard_normal((sum(n), 1024)).astype(np.float16),
            "logits": rng.standard_normal((sum(n), 521)).astype(np.float16),
            "offsets": np.cumsum([0] + n), "durations": np.asarray(durations),
            "events": events, "ids": [f"c{i}" for i in range(len(durations))], "beds": beds}


def test_long_clips_are_cropped_and_bed_sounds_are_never_negatives():
    import random

    from contrastive.yamnet_train import FeatureClips, make_batch

    part = _synthetic_part([40.0, 10.0], [[("dog barking", 30.0, 31.0)], [("rain", 0.0, 10.0)]],
                           [["insect buzzing"], []])
    data = FeatureClips([part], set())
    hits = 0
    for seed in range(20):
        b = make_batch(data, [0, 1], 4, 0.16, random.Random(seed), negatives=["insect buzzing", "dog barking"],
                       crop_frames=250, mask_beds=True)
        assert b["dense"].shape[:2] == (2, 250) and b["mask"].all()
        k_dog, k_bug = b["phrases"].index("dog barking"), b["phrases"].index("insect buzzing")
        dog = int(b["targets"][0, k_dog].sum())
        hits += dog > 0
        assert dog <= 25                                    # the 1 s bark is 25 frames, maybe cut by the crop
        # the 40 s clip's bed holds insects: no loss on that pair; the other clip keeps it as a negative
        assert b["pair_mask"][0, k_bug] == 0 and b["pair_mask"][1, k_bug] == 1
    assert 0 < hits < 20          # crops land on the dog sometimes, not always
