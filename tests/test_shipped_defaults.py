"""The embedded defaults the package ships, on the clip the repository ships: `earmark ask` finds
the thunder where it is (each true window matched at IoU >= 0.5) and says no to an absent sound.
This is the README's main job, checked on every CI run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "scripts" / "examples"


def _iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / max(1e-9, max(a[1], b[1]) - min(a[0], b[0]))


def test_ask_with_the_embedded_defaults_finds_the_thunder(monkeypatch):
    import torch

    from grounding.api import Grounder, default_scorer_dir

    if default_scorer_dir() is None:
        pytest.fail("the package ships no embedded scorer (contrastive/default)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    truth = [(e["start"], e["end"]) for e in json.loads((EXAMPLES / "thunder.jsonl").read_text())["events"]]
    g = Grounder.from_pretrained()  # whatever the package ships: fused when it has both models
    thunder, dog = g.ask_many(str(EXAMPLES / "thunder.flac"), ["thunder", "a dog barking"])
    got = [(w.start, w.end) for w in thunder.windows]
    assert thunder.exists, thunder.to_dict()
    for t in truth:
        assert max((_iou(t, w) for w in got), default=0.0) >= 0.5, (t, got)
    assert not dog.exists, dog.to_dict()
