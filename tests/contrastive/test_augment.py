"""Augmentation keeps audio and labels aligned (stretch, crop, mixing) and leaves labels alone
where it only colours the spectrum."""
import random

import numpy as np
import pytest

from contrastive.config import AugmentConfig, ModelConfig, TrainConfig
from contrastive.data import Batcher, Clip
from contrastive.phrases import build_sampler

SILENT, LOUD = float(np.log(1e-6)), 0.0
LOW, HIGH = slice(0, 20), slice(40, 64)     # "dog" lives in the low bands, "rain" in the high ones


def _clip(name, query, band, windows, seconds, cfg):
    """A clip whose mel is loud in ``band`` exactly during ``windows`` (seconds) and silent elsewhere."""
    per_s = cfg.sample_rate / cfg.hop_length
    mel = np.full((cfg.n_mels, int(seconds * per_s)), SILENT, np.float32)
    for s, e in windows:
        mel[band, int(round(s * per_s)):int(round(e * per_s))] = LOUD
    return Clip(name, mel.astype(np.float16), [(query, s, e) for s, e in windows], None)


@pytest.fixture
def setting():
    cfg = ModelConfig().audio                 # the default: 10 s windows, 100 mel frames/s, 25 frames/s out
    sampler, wordings = build_sampler(["dog barking", "rain"])
    dog = _clip("dog", "dog barking", LOW, [(1.0, 2.2), (5.6, 6.0), (13.0, 17.4)], 20.0, cfg)
    rain = _clip("rain", "rain", HIGH, [(0.4, 3.0), (7.2, 9.6)], 12.0, cfg)
    return cfg, sampler, wordings, dog, rain


def _loud(mel, band, pool):
    """Per output frame: is the band loud (pooled like the encoder pools time)?"""
    e = mel[band].mean(0)
    return e.reshape(-1, pool).mean(1) > (SILENT + LOUD) / 2 - 1.0


def _agree(labels, loud):
    """Labels and audio agree on every frame not next to a label transition."""
    edge = np.zeros_like(labels, bool)
    t = np.flatnonzero(np.diff(labels.astype(int)))
    for j in t:
        edge[max(0, j - 1):j + 3] = True
    return bool(np.all((labels > 0)[~edge] == loud[~edge]))


def _complete_runs(lab):
    """Lengths of the runs of positive frames that do not touch the window's edges."""
    d = np.diff(np.concatenate([[0], (lab > 0).astype(int), [0]]))
    return [int(e - s) for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)) if s > 0 and e < len(lab)]


def test_stretch_crop_and_mix_keep_labels_on_the_audio(setting):
    cfg, sampler, wordings, dog, rain = setting
    aug = AugmentConfig(mix_prob=1.0, stretch=0.3, gain=1.0, wordings=False)
    b = Batcher([dog, rain], cfg, sampler, 6, augment=aug, seed=1)
    rng = random.Random(0)
    lengths, mixed = [], 0
    for _ in range(40):
        batch = b.make([dog, rain], rng)
        for i in range(2):
            mel = batch["mel"][i].numpy()
            ph = batch["phrases"][i]
            mixed += set(ph[:2]) == {"dog barking", "rain"}
            for query, band in (("dog barking", LOW), ("rain", HIGH)):
                loud = _loud(mel, band, cfg.time_pool)
                if query in ph:
                    lab = batch["labels"][i, ph.index(query)].numpy()
                    assert _agree(lab, loud), (query, i)
                else:                        # not a phrase of this clip: its band must be silent
                    assert not loud.any(), (query, ph)
    assert mixed >= 25                       # mix_prob 1: about half the time the other clip is drawn
    # without mixing (a clip mixed with itself unions two crops), the 2.6 s and 2.4 s rain events (65 and 60 frames unstretched) appear shorter and longer
    b = Batcher([rain], cfg, sampler, 6, augment=AugmentConfig(stretch=0.3), seed=2)
    for _ in range(40):
        lengths += _complete_runs(b.sample(1)["labels"][0, 0].numpy())
    assert min(lengths) < 55 and max(lengths) > 70
    assert 60 / 1.3 - 2 <= min(lengths) and max(lengths) <= 65 * 1.3 + 2


def test_colour_moves_bands_but_not_labels(setting):
    cfg, sampler, wordings, dog, rain = setting
    plain = Batcher([dog], cfg, sampler, 6, augment=AugmentConfig(gain=0.0, wordings=False), seed=0)
    col = Batcher([dog], cfg, sampler, 6, augment=AugmentConfig(gain=0.0, wordings=False, freq_shift=3,
                                                                eq=0.5, freq_masks=1, freq_mask_width=4), seed=0)
    shifts = set()
    for k in range(30):
        a, c = plain.make([dog], random.Random(k)), col.make([dog], random.Random(k))
        # (the negatives differ: colouring draws from the same generator before they are sampled)
        assert a["phrases"][0][0] == c["phrases"][0][0] == "dog barking"
        assert np.array_equal(a["labels"][0, 0], c["labels"][0, 0])
        frame = int(np.flatnonzero(a["labels"][0, 0].numpy() > 0).mean()) * cfg.time_pool  # inside an event
        if a["mel"][0, 0, frame] < -7:
            continue                          # the mean fell between two events: nothing to compare
        prof_a, prof_c = a["mel"][0, :, frame].numpy(), c["mel"][0, :, frame].numpy()
        top_a, top_c = np.flatnonzero(prof_a > -7).max(), np.flatnonzero(prof_c > -7).max()
        assert abs(int(top_c) - int(top_a)) <= 3                          # the band edge moved <= 3 bins
        shifts.add(int(top_c) - int(top_a))
    assert 2 < len(shifts) <= 7
    # the tilt alone is smooth and bounded: |sum_k u_k / k| <= eq * (1 + 1/2 + 1/3), constant in time
    eq = Batcher([dog], cfg, sampler, 6, augment=AugmentConfig(gain=0.0, wordings=False, eq=0.5), seed=0)
    plain = Batcher([dog], cfg, sampler, 6, augment=AugmentConfig(gain=0.0, wordings=False), seed=0)
    d = (eq.make([dog], random.Random(1))["mel"] - plain.make([dog], random.Random(1))["mel"])[0].numpy()
    assert np.abs(d).max() <= 0.5 * 11 / 6 + 1e-4 and np.abs(d).max() > 0.05
    assert np.allclose(d, d[:, :1], atol=1e-5)


def test_default_augment_is_the_original_recipe_and_config_round_trips():
    assert TrainConfig.from_dict({"augment": True}).augment == AugmentConfig()
    assert TrainConfig.from_dict({"augment": False}).augment is None
    cfg = TrainConfig.from_dict({"augment": {"mix_prob": 0.3, "stretch": 0.2}})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.augment.freq_shift == 0 and cfg.augment.gain == 1.5
    with pytest.raises(ValueError, match="augment.mix_prob"):
        TrainConfig.from_dict({"augment": {"mix_prob": 1.5}})
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"augment": {"pitch": 2}})


def test_validation_turns_augmentation_off(setting):
    cfg, sampler, wordings, dog, rain = setting
    b = Batcher([dog, rain], cfg, sampler, 6, augment=AugmentConfig(mix_prob=1.0, stretch=0.3, eq=1.0), seed=0)
    b.augment = False
    x, y = b.make([dog], random.Random(5)), b.make([dog], random.Random(5))
    assert np.array_equal(x["mel"], y["mel"]) and x["phrases"][0][0] == "dog barking"
    assert np.array_equal(x["mel"][0].numpy(), dog.mel[:, :1000].astype(np.float32))
