"""`earmark ask` and the Python API on tiny random models of the real classes (answers are
random; what is tested is the plumbing: modes, printing, JSON, plots, clear errors)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data_recipes.audio import save_audio
from grounding import api
from grounding.api import Grounder, MissingModelError
from grounding.ask_cli import ask_main
from grounding.testing import tone_clip
from pipeline_fakes import make_tiny_scorer


@pytest.fixture(scope="module")
def tiny_scorer(tmp_path_factory):
    return make_tiny_scorer(tmp_path_factory.mktemp("scorer") / "tiny")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    p = tmp_path_factory.mktemp("clip") / "beeps.flac"
    save_audio(p, tone_clip(6.0, [(1.0, 2.5, 1000)]), 16000)
    return p


@pytest.fixture
def no_defaults(monkeypatch):
    monkeypatch.setattr(api, "default_scorer_dir", lambda: None)
    monkeypatch.setattr(api, "default_grounder_dir", lambda: None)


def test_ask_fused_json_and_plot(clip, tiny_dirs, tiny_scorer, tmp_path, capsys):
    png = tmp_path / "out" / "ask.png"
    cfg = tmp_path / "pipeline.json"
    cfg.write_text(json.dumps({"max_new_tokens_ground": 6, "top_k": 2}))  # a random model never stops
    code = ask_main([str(clip), "a beeping tone", "dog barking", "--grounder", str(tiny_dirs["qwen2-audio"]),
                     "--scorer", str(tiny_scorer), "--absent-below", "0", "--json", "--plot", str(png),
                     "--config", str(cfg)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "fused" and out["engine"] == "hf" and len(out["answers"]) == 2
    a = out["answers"][0]
    assert a["query"] == "a beeping tone" and a["decided_by"] == "llm"  # absent_below 0: the verifier never vetoes
    assert a["thresholds"]["absent_below"] == 0 and a["thresholds"]["top_k"] == 2 and a["raw"]["exist"] is not None
    assert a["status"] in ("strict", "lenient", "repaired", "unparsed")
    assert png.is_file() and png.stat().st_size > 1000


def test_ask_scorer_mode_text(clip, tiny_scorer, capsys, no_defaults):
    assert ask_main([str(clip), "a beeping tone", "--scorer", str(tiny_scorer)]) == 0  # auto -> scorer
    out = capsys.readouterr().out
    assert "mode scorer" in out and '"a beeping tone": NO' in out  # a random scorer hears nothing
    assert "scorer_threshold" in out


def test_ask_without_any_model_says_what_is_missing(clip, capsys, no_defaults):
    assert ask_main([str(clip), "a dog barks"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model to answer with" in err and "--scorer" in err and "--grounder" in err
    assert ask_main([str(clip), "a dog barks", "--mode", "llm", "--scorer", "/nonexistent/scorer"]) == 1
    assert "scorer /nonexistent/scorer: no such directory" in capsys.readouterr().err


def test_ask_mode_needs_its_model(clip, tiny_scorer, capsys, no_defaults):
    assert ask_main([str(clip), "x", "--mode", "fused", "--scorer", str(tiny_scorer)]) == 1
    err = capsys.readouterr().err
    assert "mode 'fused'" in err and "a grounder" in err and "a scorer" not in err


def test_ask_bad_inputs(clip, tiny_scorer, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio")
    for argv, expect in [([str(bad), "dog"], "bad.wav"), ([str(tmp_path / "missing.flac"), "dog"], "missing.flac"),
                         ([str(clip), "  "], "empty query")]:
        assert ask_main(argv + ["--scorer", str(tiny_scorer), "--mode", "scorer"]) == 1
        err = capsys.readouterr().err
        assert expect in err and err.startswith("earmark ask: error:") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        ask_main([str(clip)])  # no query: argparse usage error


def test_python_api(tiny_dirs, tiny_scorer, no_defaults):
    with pytest.raises(MissingModelError, match="no model to answer with"):
        Grounder.from_pretrained()
    g = Grounder.from_pretrained(scorer=tiny_scorer, top_k=2)
    assert g.mode == "scorer" and g.config.top_k == 2
    wave = tone_clip(3.0, [(1.0, 2.0, 1000)])
    a = g.ask(wave, "a beeping tone", sample_rate=16000)
    assert a.exists is False and a.duration == pytest.approx(3.0) and 1 <= len(a.scorer["candidates"]) <= 2
    g = Grounder.from_pretrained(tiny_dirs["qwen2-audio"], mode="llm", max_new_tokens_ground=4)
    answers = g.ask_many((np.stack([wave, wave], 1), 16000), ["a", "b"])
    assert [x.mode for x in answers] == ["llm", "llm"] and g.describe()["grounder"] == str(tiny_dirs["qwen2-audio"])
    with pytest.raises(ValueError, match="mode must be"):
        Grounder.from_pretrained(mode="both")


def test_earmark_predictor(clip):
    """The eval entry point: one record per query, an empty query is an `error` record (the others
    are still answered), raw in the strict grammar outside llm mode."""
    from importlib import metadata

    from data_recipes.formats import PredictionRecord, QueryRecord
    from grounding.pipeline import Pipeline, PipelineConfig
    from grounding.predictor import EarmarkPredictor
    from pipeline_fakes import CurveScorer

    eps = {ep.name: ep for ep in metadata.entry_points(group="earmark.predictors")}
    assert eps["earmark"].load() is EarmarkPredictor
    g = Grounder(Pipeline(PipelineConfig(mode="scorer"), scorer=CurveScorer({"a beeping tone": [(1.0, 2.5)]})))
    pred = EarmarkPredictor(grounder_obj=g)
    qs = [QueryRecord("q1", "c", "a beeping tone", False, [(1.0, 2.5)]), QueryRecord("q2", "c", "  ", True),
          QueryRecord("q3", "c", "rain", True)]
    out = {p.id: p for p in pred.predict(clip, qs)}
    assert set(out) == {"q1", "q2", "q3"} and pred.engine == "earmark-scorer"
    assert out["q1"].exists and out["q1"].raw.startswith("Yes. From 1.") and out["q1"].status == "strict"
    assert out["q2"].status == "error" and "empty query" in out["q2"].raw
    assert not out["q3"].exists and out["q3"].raw == "No." and out["q3"].ms > 0
    for p in out.values():
        assert PredictionRecord.from_dict(p.to_dict()).to_dict() == p.to_dict()  # valid for eval's files


def test_grounder_dirs_and_lora_adapter(tiny_dirs, tmp_path):
    """A training run's layout: merged/ is preferred; an adapter-only dir loads its base with the
    LoRA merged and answers exactly as the merged checkpoint does."""
    import torch
    from peft import LoraConfig, get_peft_model

    from grounding.api import load_grounder, resolve_grounder_dir
    from grounding.backbones import load_backbone

    bb = load_backbone(tiny_dirs["qwen2-audio"])
    torch.manual_seed(0)
    peft = get_peft_model(bb.model, LoraConfig(r=4, lora_alpha=8, target_modules=bb.lora_attention_regex))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # a trained-looking adapter (B is zero at init)
    run = tmp_path / "run"
    peft.save_pretrained(str(run / "adapter"))
    settings = {"granularity": 2.0, "interleave": True, "hint_k": 3, "kind": "qwen2-audio",
                "base": str(tiny_dirs["qwen2-audio"])}
    (run / "adapter" / "grounder_settings.json").write_text(json.dumps(settings))
    assert resolve_grounder_dir(run) == run / "adapter"
    bb.model = peft.merge_and_unload()
    bb.settings = {"granularity": 2.0, "interleave": True}
    bb.save_pretrained(run / "merged")
    assert resolve_grounder_dir(run) == run / "merged"
    a = load_grounder(run / "adapter")
    assert a.settings["granularity"] == 2.0 and a.settings["hint_k"] == 3  # how it was trained to be asked
    m = load_grounder(run / "merged")
    for x, y in zip(a.model.state_dict().values(), m.model.state_dict().values()):
        torch.testing.assert_close(x, y)
    with pytest.raises(MissingModelError, match="nor merged"):
        resolve_grounder_dir(tmp_path)


def test_ask_says_how_many_occurrences_it_does_not_show(clip):
    """A recording with more occurrences than --top-k windows: the answer says "2 of 5 shown"
    (text) and carries events_total (JSON); the legend says what each number is."""
    from grounding.ask_cli import answer_record, format_answers
    from grounding.pipeline import Pipeline, PipelineConfig
    from pipeline_fakes import CurveScorer

    truth = {"a beeping tone": [(0.5, 1.0), (1.5, 2.0), (2.5, 3.0), (3.5, 4.0), (4.5, 5.0)], "狗叫": [(1.0, 2.0)]}
    g = Grounder(Pipeline(PipelineConfig(mode="scorer", top_k=2), scorer=CurveScorer(truth)), sources={"scorer": "x"})
    answers = g.ask_many(clip, ["a beeping tone", "狗叫"])
    assert answers[0].exists and len(answers[0].windows) == 2
    text = format_answers(clip, g, answers, frame_threshold=0.5)
    assert "2 of 5 occurrences shown" in text and "above 0.50" in text
    assert "existence score = the scorer's probability that the sound occurs (YES at >=" in text
    assert "note: the text encoder is English-only" in text and text.count("note:") == 1
    rec = answer_record(answers[0], 0.5)
    assert rec["events_total"] == 5 and rec["notes"] == [] and "English-only" in answer_record(answers[1], 0.5)["notes"][0]


def test_ask_single_file_forms_unchanged(clip, tiny_scorer, tmp_path, capsys):
    """`earmark ask AUDIO QUERY...` keeps its one-document JSON; the same with -q gives it too."""
    for argv in ([str(clip), "a beeping tone", "rain"], ["-q", "a beeping tone", "-q", "rain", str(clip)]):
        assert ask_main(argv + ["--scorer", str(tiny_scorer), "--mode", "scorer", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["audio"] == str(clip) and [a["query"] for a in out["answers"]] == ["a beeping tone", "rain"]
    assert ask_main([str(clip), "rain", "--scorer", str(tiny_scorer), "--mode", "scorer", "--format", "srt"]) == 0
    assert capsys.readouterr().out == ""  # a NO answer has no cue
