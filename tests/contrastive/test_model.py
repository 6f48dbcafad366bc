"""Model factory, encoder variants, frame alignment, config validation."""
import pytest
import torch

from contrastive.config import ModelConfig, TrainConfig
from contrastive.model import create_model


@pytest.mark.parametrize("audio,head", [
    ({"kind": "tcn", "channels": [16, 16], "width": 32}, "linear"),
    ({"kind": "cnn", "channels": [4, 8, 8], "width": 32}, "transformer"),
    ({"kind": "patch", "width": 32, "layers": 1, "heads": 2, "mask_ratio": 0.5}, "bigru"),
])
def test_encoders_frame_rate_and_shapes(audio, head):
    cfg = ModelConfig.from_dict({"audio": audio, "embed_dim": 24, "dense_head": head, "dense_layers": 1,
                                 "dense_heads": 2, "flam": True})
    model, fe = create_model(cfg)
    model.eval()
    assert model.frames_per_second == 25.0
    wave = torch.randn(2, 16000 * 3) * 0.1
    with torch.no_grad():
        g, d = model.encode_audio(wave)
        gf, df = model.audio_features(wave)
        text = model.encode_text(["a dog barks", "rain"])
        logits = model.frame_logits(d, text)
        p = model.frame_probs(logits, text)
    assert g.shape == (2, 24) and d.shape == (2, 75, 24)          # 3 s x 25 frames/s
    assert gf.shape == (2, 32) and df.shape == (2, 75, 32)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(2, 75))
    assert logits.shape == (2, 2, 75) and ((p >= 0) & (p <= 1)).all()
    if audio["kind"] == "patch":
        loss = model.audio.encoder.mae_loss(model.audio.mel(wave))
        assert loss.ndim == 0 and torch.isfinite(loss)


def test_flam_unbiased_output_is_half_at_the_prior():
    model, _ = create_model({"audio": {"kind": "tcn", "channels": [8], "width": 16}, "embed_dim": 8,
                             "dense_head": "linear", "flam": True})
    text = {"emb": torch.zeros(1, 8), "scale": torch.ones(1), "bias": torch.tensor([-3.0])}
    logits = torch.full((1, 1, 1), -3.0)             # posterior p == prior sigmoid(beta)
    assert model.frame_probs(logits, text).item() == pytest.approx(0.5)
    assert model.frame_probs(logits, text, unbiased=False).item() == pytest.approx(torch.sigmoid(torch.tensor(-3.0)).item())


def test_configs_reject_bad_fields_by_name(tmp_path):
    with pytest.raises(ValueError, match="audio.kind"):
        ModelConfig.from_dict({"audio": {"kind": "wav2vec"}})
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({"embed": 3})
    with pytest.raises(ValueError, match="loss.clip_loss"):
        TrainConfig.from_dict({"loss": {"clip_loss": "hinge"}})
    p = tmp_path / "c.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="c.json"):
        TrainConfig.from_json(p)
    cfg = TrainConfig.from_dict({"train": ["a.jsonl"]})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_embedded_default_loads_and_scores():
    import numpy as np

    from contrastive import DEFAULT_DIR, Scorer

    assert (DEFAULT_DIR / "model.safetensors").stat().st_size < 20 * 2 ** 20
    sc = Scorer.from_pretrained()
    assert sc.fps == 25.0 and 0 < sc.threshold < 1
    y = (0.1 * np.random.default_rng(0).standard_normal(16000 * 3)).astype(np.float32)
    fs = sc.frame_scores(y, ["dog barking", "rain"])
    assert fs.scores.shape == (2, 75) and np.isfinite(fs.scores).all()
    assert 0.0 <= sc.exists(y, "dog barking") <= 1.0


def test_existence_and_events_use_their_own_median_filters(monkeypatch):
    import numpy as np

    from contrastive import Scorer
    from contrastive.scorer import FrameScores

    sc = Scorer.from_pretrained(median_seconds=1.0, exists_median_seconds=0.12)
    sc.existence_calibration = None                # compare raw peaks
    curve = np.full(100, 0.05)
    curve[40:43] = 0.9                              # a 0.12 s spike: 3 frames at 25 frames/s
    curve[60:85] = 0.6                              # a 1 s event with a one-frame dip
    curve[70] = 0.1
    monkeypatch.setattr(sc, "frame_scores", lambda audio, phrases: FrameScores(list(phrases), curve[None], 25.0, 4.0))
    # the short filter keeps the spike's peak for existence...
    assert sc.exists("x", "dog") == pytest.approx(0.9)
    # ...the long one removes the spike from the events and keeps the dipped event in one piece
    assert [(e.start, e.end) for e in sc.events("x", ["dog"], threshold=0.3)] == [pytest.approx((2.44, 3.4))]
    with pytest.raises(ValueError, match="exists_median_seconds"):
        Scorer(sc.model, exists_median_seconds=float("nan"))
