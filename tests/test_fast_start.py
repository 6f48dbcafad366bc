"""Fast start: what `earmark --help`, `earmark ask --help` and `earmark ask` import (structural,
not timed: a subprocess reports its sys.modules), the MiniLM text tower without
sentence-transformers (same features), and the on-disk phrase cache."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "data" / "yamnet_examples.flac"
HEAVY = ("torch", "sentence_transformers", "matplotlib", "transformers", "sklearn", "datasets", "librosa")

# runs CODE in a fresh interpreter, then prints the root names of every imported module as JSON
_REPORT = """
import json, sys
{code}
print("MODULES=" + json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""


def _modules(code: str, tmp_path, **env) -> tuple[set, str]:
    full_env = os.environ | {"EARMARK_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
                             "HF_HUB_OFFLINE": "1"} | env
    res = subprocess.run([sys.executable, "-c", _REPORT.format(code=code)], check=False, cwd=ROOT, env=full_env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    line = [x for x in res.stdout.splitlines() if x.startswith("MODULES=")][-1]
    return set(json.loads(line[len("MODULES="):])), res.stdout


@pytest.mark.parametrize("argv", [["--help"], ["ask", "--help"]])
def test_help_imports_nothing_heavy(argv, tmp_path):
    code = f"""
import earmark_cli
try:
    earmark_cli.main({argv!r})
except SystemExit:
    pass
"""
    mods, out = _modules(code, tmp_path)
    assert "usage" in out
    assert not mods & set(HEAVY), sorted(mods & set(HEAVY))


def test_ask_path_never_imports_sentence_transformers(tmp_path):
    code = f"""
import earmark_cli
rc = earmark_cli.main(["ask", {str(CLIP)!r}, "a dog barking"])
assert rc == 0, rc
"""
    mods, out = _modules(code, tmp_path)
    assert '"a dog barking"' in out
    assert "torch" in mods                                   # inference needs it: the check is live
    for name in ("sentence_transformers", "matplotlib", "sklearn", "librosa", "datasets", "peft"):
        assert name not in mods, name


def test_cached_phrases_skip_the_text_model(tmp_path):
    """The second process finds every phrase (the query and YAMNet's class names) on disk: it does
    not import transformers at all, and scores exactly as the process that encoded them."""
    code = f"""
from contrastive.scorer import Scorer
s = Scorer.from_pretrained()
print("P=%r" % s.exists({str(CLIP)!r}, "a dog barking"))
"""
    first, out1 = _modules(code, tmp_path)
    second, out2 = _modules(code, tmp_path)
    assert "transformers" in first and "transformers" not in second
    p1, p2 = (float(o.split("P=")[1].split()[0]) for o in (out1, out2))
    assert p1 == p2
    assert list((tmp_path / "cache" / "text").glob("*.npz"))


def test_minilm_features_equal_sentence_transformers():
    import torch
    from sentence_transformers import SentenceTransformer

    from contrastive.config import TextConfig
    from contrastive.text_encoders import TextEncoder, minilm_dir

    phrases = ["thunder", "A Dog barking in the distance!", "ça tonne", "x", "rain on a tin roof " * 80,
               "footsteps on gravel", "an engine idling, then revving"]   # one is past 256 tokens
    ours = TextEncoder(TextConfig())(phrases)
    ref = SentenceTransformer(str(minilm_dir()), device="cpu").encode(phrases, convert_to_tensor=True,
                                                                    show_progress_bar=False).float()
    assert ours.shape == ref.shape == (len(phrases), 384)
    assert (ours - ref).abs().max().item() < 1e-5
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(len(phrases)))


def test_phrase_store_survives_bad_files_and_round_trips(tmp_path):
    from contrastive.text_encoders import PhraseStore

    path = tmp_path / "text" / "k.npz"
    store = PhraseStore(path)
    assert store.load() == {}                                # no file yet
    path.parent.mkdir()
    path.write_bytes(b"not an npz")
    assert store.load() == {}                                # a damaged cache is ignored, not fatal
    a, b = np.arange(4, dtype=np.float32), np.ones(4, np.float32)
    store.save({"dog": a})
    store.save({"rain": b})                                  # merged with what is there
    got = store.load()
    assert set(got) == {"dog", "rain"}
    np.testing.assert_array_equal(got["dog"], a)
    assert not list(path.parent.glob("*.tmp"))               # the atomic write left no temp file


def test_phrase_store_never_fails_on_an_unwritable_place(tmp_path):
    from contrastive.text_encoders import PhraseStore

    blocker = tmp_path / "file"
    blocker.write_text("x")                                  # a file where the directory should be
    PhraseStore(blocker / "text" / "k.npz").save({"dog": np.zeros(2, np.float32)})


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    from contrastive.text_encoders import cache_root

    monkeypatch.setenv("EARMARK_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.setenv("EARMARK_CACHE", "off")
    assert cache_root() is None
    monkeypatch.delenv("EARMARK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "earmark"


def test_unsupported_sentence_pipeline_is_named(tmp_path):
    from contrastive.text_encoders import read_sentence_spec

    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 8, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    (tmp_path / "sentence_bert_config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"1_Pooling/config.json: pooling \['pooling_mode_cls_token'\]"):
        read_sentence_spec(tmp_path)
    (tmp_path / "modules.json").unlink()
    with pytest.raises(FileNotFoundError, match="modules.json: missing"):
        read_sentence_spec(tmp_path)


def test_frozen_minilm_loads_lazily_and_a_trained_one_at_once():
    from contrastive.config import TextConfig
    from contrastive.text_encoders import TextEncoder

    frozen = TextEncoder(TextConfig())
    assert frozen.model is None and frozen.dim == 384 and frozen.trainable_state_dict() == {}
    trained = TextEncoder(TextConfig(freeze=False))          # its parameters exist for the optimiser
    assert trained.model is not None and trained.trainable_state_dict()
    trained(["a dog barking"]).sum().backward()
    assert any(p.grad is not None for p in trained.model.parameters())
