"""The embedded defaults the package ships, on the clip the repository ships: `earmark ask` finds
the thunder where it is and says no to an absent sound. This is the README's main job, checked on
every CI run.

"Where it is" is the IoU the benchmarks score answers by (``eval.metrics.iou``: the union of the
answered windows against the union of the true ones), at >= 0.7. The default on pretrained hearing
answers this clip's two thunder claps, 0.46 s apart, as one window (1.00-6.44 s against 1.14-3.44
and 3.90-6.20 s: union IoU 0.85); the previous CNN default answered two (BENCHMARKS.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "scripts" / "examples"


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
    from eval.metrics import iou

    got = [(w.start, w.end) for w in thunder.windows]
    assert thunder.exists, thunder.to_dict()
    assert iou(got, truth) >= 0.7, (truth, got)
    assert not dog.exists, dog.to_dict()


def test_detect_says_where_a_present_sound_peaks_when_no_frame_reaches_the_threshold(capsys, monkeypatch):
    """Defect: `detect` printed "PRESENT ... 0 interval(s)" and nothing else when the existence
    decision said yes but no frame reached the interval threshold (here forced by --threshold)."""
    from contrastive.cli import detect_main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    truth = [(e["start"], e["end"]) for e in json.loads((EXAMPLES / "thunder.jsonl").read_text())["events"]]
    assert detect_main([str(EXAMPLES / "thunder.flac"), "thunder", "--threshold", "0.99", "--json",
                        "--no-progress"]) == 0
    entry = json.loads(capsys.readouterr().out)["phrases"][0]
    assert entry["present"] and entry["events"] == []
    s, e, _ = entry["best_window"]
    assert s < truth[-1][1] and e > truth[0][0]          # it overlaps the thunder
    assert detect_main([str(EXAMPLES / "thunder.flac"), "thunder", "--threshold", "0.99", "--no-progress"]) == 0
    assert "no frame reaches 0.99; the evidence peaks at" in capsys.readouterr().out
