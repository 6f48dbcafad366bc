"""Arrays handed to ``Grounder.ask`` / ``ask_many``: their rate is required and their layout is
read, never guessed — a 22.05 kHz or 44.1 kHz stereo recording answers at the true times."""
from __future__ import annotations

import numpy as np
import pytest

from contrastive.scorer import AudioEmbedding, FrameScores
from data_recipes.audio import AudioError
from grounding.api import Grounder
from grounding.pipeline import Pipeline, PipelineConfig

from pipeline_fakes import CurveScorer

TONE = "a loud tone"


class EnergyScorer(CurveScorer):
    """Frame probability 0.9 where the 16 kHz samples it is given are loud, 0.02 elsewhere: the
    answer's times are exactly where the samples put the sound."""

    def __init__(self):
        super().__init__({})
        self.wave = None

    def embed(self, audio, *, name=None, progress=False):
        if isinstance(audio, AudioEmbedding):
            return audio
        self.wave = np.asarray(audio, dtype=np.float32)
        assert self.wave.ndim == 1
        return AudioEmbedding(None, None, self.fps, len(self.wave) / self.sr, name or "audio")

    def frame_scores(self, audio, phrases):
        emb = self.embed(audio)
        hop = int(self.sr / self.fps)
        n = len(self.wave) // hop
        rms = np.sqrt((self.wave[:n * hop].reshape(n, hop) ** 2).mean(axis=1))
        row = np.where(rms > 0.1, 0.9, 0.02).astype(np.float32)
        return FrameScores(list(phrases), np.stack([row] * len(phrases)), self.fps, emb.duration)


def tone_at(start, end, seconds, sr, channels=None):
    """A 1 kHz tone from ``start`` to ``end`` s in silence; (channels, samples) when asked."""
    t = np.arange(int(seconds * sr)) / sr
    y = np.where((t >= start) & (t < end), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)
    return y if channels is None else np.stack([y] * channels)


@pytest.fixture()
def grounder():
    return Grounder(Pipeline(PipelineConfig(mode="scorer"), scorer=EnergyScorer()))


def only_window(answer):
    assert answer.exists, answer
    (w,) = answer.windows
    return w.start, w.end


@pytest.mark.parametrize("sr,layout", [(22050, "mono"), (44100, "channels-first"), (44100, "channels-last"),
                                       (8000, "mono")])
def test_array_answers_at_true_times_at_any_rate_and_layout(grounder, sr, layout):
    y = tone_at(3.0, 4.0, 8.0, sr, channels=None if layout == "mono" else 2)
    if layout == "channels-last":
        y = y.T
    start, end = only_window(grounder.ask(y, TONE, sample_rate=sr))
    assert start == pytest.approx(3.0, abs=0.1) and end == pytest.approx(4.0, abs=0.1)
    assert len(grounder.pipeline.scorer.wave) == pytest.approx(8.0 * 16000, abs=2)


def test_ask_many_takes_the_rate_too(grounder):
    y = tone_at(1.0, 2.0, 5.0, 48000, channels=2)
    answers = grounder.ask_many(y, [TONE, "anything"], sample_rate=48000)
    assert [only_window(a) for a in answers] == [pytest.approx((1.0, 2.0), abs=0.1)] * 2


def test_a_samples_rate_pair_is_an_array_with_its_rate(grounder):
    y = tone_at(2.0, 3.0, 6.0, 22050)
    assert only_window(grounder.ask((y, 22050), TONE)) == pytest.approx((2.0, 3.0), abs=0.1)


def test_an_array_without_its_rate_is_refused(grounder):
    with pytest.raises(AudioError, match="sample_rate is required"):
        grounder.ask(tone_at(1.0, 2.0, 4.0, 22050), TONE)
    with pytest.raises(AudioError, match="sample_rate is required"):
        grounder.ask_many(tone_at(1.0, 2.0, 4.0, 22050), [TONE])


@pytest.mark.parametrize("shape", [(4, 4), (100, 200), (2, 30), (2, 3, 1000)])
def test_ambiguous_shapes_are_refused_naming_the_shape(grounder, shape):
    with pytest.raises(AudioError, match=re_shape(shape)):
        grounder.ask(np.zeros(shape, np.float32), TONE, sample_rate=16000)


def re_shape(shape):
    import re

    return re.escape(str(tuple(shape)))


@pytest.mark.parametrize("rate", [0, -16000, 22050.5, float("nan"), "16k", True])
def test_bad_sample_rates_are_named(grounder, rate):
    with pytest.raises(AudioError, match="sample_rate"):
        grounder.ask(np.zeros(16000, np.float32), TONE, sample_rate=rate)


def test_a_rate_for_a_file_is_refused(grounder, tmp_path):
    with pytest.raises(ValueError, match="sample_rate=44100 is for arrays"):
        grounder.ask(tmp_path / "x.wav", TONE, sample_rate=44100)


def test_scorer_embed_takes_a_rate_and_a_layout():
    from contrastive import Scorer

    sc = Scorer.from_pretrained()
    y = tone_at(1.0, 2.0, 3.0, 44100, channels=2)
    emb = sc.embed(y, sample_rate=44100)
    assert emb.duration == pytest.approx(3.0, abs=1e-3)
    ref = sc.embed(tone_at(1.0, 2.0, 3.0, 16000))
    assert np.allclose(sc.frame_scores(emb, [TONE]).scores, sc.frame_scores(ref, [TONE]).scores, atol=0.02)
    with pytest.raises(AudioError, match=re_shape((8, 8))):
        sc.embed(np.zeros((8, 8), np.float32), sample_rate=16000)


def test_the_eval_predictor_says_which_model_answers(grounder):
    from grounding.predictor import EarmarkPredictor

    d = EarmarkPredictor(grounder_obj=grounder).describe()
    assert d["mode"] == "scorer" and d["config"]["mode"] == "scorer"
    import json

    json.dumps(d)  # stored in eval's predictor.json


def test_pipeline_arrays_follow_the_same_layout_rule():
    """Pipeline.ask's own array path read (channels, samples) as (samples, channels) and averaged
    over time; it now uses the layout rule of Grounder.ask."""
    from grounding.pipeline import load_wave

    t = np.arange(16000) / 16000
    mono = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for arr in (np.stack([mono, mono]), np.stack([mono, mono], 1)):
        y, _, _ = load_wave(arr)
        assert y.shape == (16000,) and np.allclose(y, mono, atol=1e-6)
    y, _, _ = load_wave((np.stack([mono, mono]), 8000))
    assert y.shape == (32000,)
    with pytest.raises(AudioError, match="ambiguous array shape"):
        load_wave(np.zeros((100, 200), np.float32))
