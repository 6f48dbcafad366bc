"""Hugging Face habits: ``save_pretrained`` / ``from_pretrained`` on the scorer and the grounder
API, round trips of the shipped scorers, and Hub ids resolved offline from a hub cache built here
(``models--org--name/snapshots/<rev>/`` + ``refs/main``; no network)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contrastive.scorer import (
    NAMED_SCORERS,
    Scorer,
    looks_like_hub_id,
    resolve_scorer_dir,
)

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "tests" / "data" / "yamnet_examples.flac"
REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def phrase_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("earmark-cache")


@pytest.fixture(autouse=True)
def _cache(phrase_cache, monkeypatch):
    # the MiniLM features of YAMNet's class names are computed once for the module, not per load
    monkeypatch.setenv("EARMARK_CACHE", str(phrase_cache))


@pytest.fixture(scope="module")
def samples():
    import soundfile as sf

    y, sr = sf.read(CLIP, dtype="float32")
    assert sr == 16000
    return y[:4 * sr]


def fake_hub(root: Path, repo_id: str, files_from: Path) -> Path:
    """The layout huggingface_hub's cache has after a download of ``repo_id`` at main."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(files_from, repo / "snapshots" / REV)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REV)
    return repo / "snapshots" / REV


def run_offline(code: str, hub: Path, cache: Path) -> str:
    env = os.environ | {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "EARMARK_CACHE": str(cache),
                        "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.mark.parametrize("name", sorted(NAMED_SCORERS))
def test_shipped_scorers_round_trip(name, tmp_path, samples):
    a = Scorer.from_pretrained(name)
    out = a.save_pretrained(tmp_path / name)
    b = Scorer.from_pretrained(out)
    original = json.loads((NAMED_SCORERS[name] / "config.json").read_text())
    saved = json.loads((out / "config.json").read_text())
    assert b.model.config == a.model.config and saved["library"] == original["library"]
    assert {k: saved["model"][k] for k in original["model"]} == original["model"]   # + fields with defaults
    assert saved.get("run") == original.get("run")
    for k in ("window", "hop", "median_seconds", "threshold", "exists_median_seconds", "exists_threshold",
              "absent_below", "candidate_rel", "existence_calibration"):
        assert getattr(b, k) == getattr(a, k), k
    phrases = ["thunder", "a dog barking"]
    np.testing.assert_array_equal(b.frame_scores(samples, phrases).scores, a.frame_scores(samples, phrases).scores)


def test_default_scorer_config_survives_unchanged(tmp_path):
    """Saving the embedded default changes nothing it records (threshold statistics included)."""
    out = Scorer.from_pretrained().save_pretrained(tmp_path / "d")
    original = json.loads((NAMED_SCORERS["default"] / "config.json").read_text())
    saved = json.loads((out / "config.json").read_text())
    saved["model"] = {k: saved["model"][k] for k in original["model"]}
    assert saved == original


def test_changed_settings_are_what_is_saved(tmp_path, samples):
    a = Scorer.from_pretrained("zeroshot", threshold=0.3, median_seconds=0.2)
    a.exists_threshold = 0.42
    b = Scorer.from_pretrained(a.save_pretrained(tmp_path / "z"))
    assert (b.threshold, b.median_seconds, b.exists_threshold) == (0.3, 0.2, 0.42)


@pytest.mark.parametrize("name,hub", [("acme/earmark-scorer", True), ("earmark-scorer", True),
                                      ("./runs/x", False), ("/abs/x", False), ("a/b/c", False),
                                      ("bad id!", False), ("~/x", False)])
def test_what_counts_as_a_hub_id(name, hub):
    assert looks_like_hub_id(name) is hub


def test_scorer_hub_id_loads_offline_from_the_cache(tmp_path, phrase_cache):
    snap = fake_hub(tmp_path / "hub", "acme/earmark-scorer", NAMED_SCORERS["zeroshot"])
    out = run_offline(f"""
from contrastive.scorer import Scorer, resolve_scorer_dir
print("DIR=" + str(resolve_scorer_dir("acme/earmark-scorer")))
print("REV=" + str(resolve_scorer_dir("acme/earmark-scorer", revision="{REV}")))
s = Scorer.from_pretrained("acme/earmark-scorer")
print("P=%r" % s.exists({str(CLIP)!r}, "thunder"))
""", tmp_path / "hub", phrase_cache)
    assert f"DIR={snap}" in out and f"REV={snap}" in out
    got = float(out.split("P=")[1].split()[0])
    assert got == pytest.approx(Scorer.from_pretrained("zeroshot").exists(CLIP, "thunder"), abs=1e-6)


def test_unknown_hub_id_offline_says_what_was_looked_for(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match=r"scorer 'acme/nothing-here': no such directory, shipped name, "
                                                r"nor Hugging Face Hub model"):
        resolve_scorer_dir("acme/nothing-here")
    # a path that cannot be a Hub id never reaches the Hub: the caller reports the missing path
    assert resolve_scorer_dir(str(tmp_path / "missing")) == tmp_path / "missing"


# ---- the grounder API ------------------------------------------------------------------------
def _answers(g, audio, queries):
    return [{k: v for k, v in a.to_dict().items() if k != "timings"} for a in g.ask_many(audio, queries)]


def test_grounder_scorer_mode_round_trip(tmp_path):
    from grounding.api import Grounder

    g = Grounder.from_pretrained(scorer="zeroshot", mode="scorer", top_k=2)
    out = g.save_pretrained(tmp_path / "g")
    assert sorted(p.name for p in out.iterdir()) == ["earmark_grounder.json", "scorer"]
    h = Grounder.from_pretrained(out)
    assert h.mode == "scorer" and h.config == g.config and h.config.top_k == 2
    assert h.sources["scorer"] == str(out / "scorer")
    queries = ["thunder", "a dog barking"]
    assert _answers(h, str(CLIP), queries) == _answers(g, str(CLIP), queries)
    assert Grounder.from_pretrained(out, top_k=1).config.top_k == 1      # overrides beat the saved settings


def test_grounder_llm_mode_round_trip(tmp_path, samples):
    from grounding.api import Grounder
    from grounding.backbones.tiny import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint("qwen2-audio", tmp_path / "tiny", vocab="compact")
    g = Grounder.from_pretrained(ckpt, mode="llm", max_new_tokens_ground=4)
    out = g.save_pretrained(tmp_path / "g")
    assert (out / "grounder").is_dir() and not (out / "scorer").exists()
    h = Grounder.from_pretrained(out)
    assert h.mode == "llm" and h.config == g.config
    clip = tmp_path / "clip.wav"
    import soundfile as sf

    sf.write(clip, samples[:32000], 16000)
    assert _answers(h, str(clip), ["a tone"]) == _answers(g, str(clip), ["a tone"])


def test_grounder_hub_id_loads_offline_from_the_cache(tmp_path, phrase_cache):
    from grounding.api import Grounder

    saved = Grounder.from_pretrained(scorer="zeroshot", mode="scorer").save_pretrained(tmp_path / "g")
    snap = fake_hub(tmp_path / "hub", "acme/earmark", saved)
    out = run_offline("""
from grounding.api import Grounder
g = Grounder.from_pretrained("acme/earmark")
print("MODE=" + g.mode)
print("SCORER=" + g.sources["scorer"])
""", tmp_path / "hub", phrase_cache)
    assert "MODE=scorer" in out and f"SCORER={snap / 'scorer'}" in out


def test_grounder_bad_saved_settings_are_named(tmp_path):
    from grounding.api import Grounder, MissingModelError

    (tmp_path / "earmark_grounder.json").write_text(json.dumps({"library": "other", "mode": "scorer", "config": {}}))
    with pytest.raises(ValueError, match=r"earmark_grounder.json: not a saved earmark grounder"):
        Grounder.from_pretrained(tmp_path)
    (tmp_path / "earmark_grounder.json").write_text(
        json.dumps({"library": "earmark.grounding", "mode": "llm", "config": {}}))
    with pytest.raises(MissingModelError, match="mode 'llm'"):       # it says llm but has no grounder/
        Grounder.from_pretrained(tmp_path)
