"""Batch runs of `earmark ask` / `earmark detect` (data_recipes.batch and the two CLIs) on a tiny
random scorer: inputs, resumable JSONL, broken files, formats, bounded options, plots, and the
`earmark` dispatcher's exit codes for interrupts and closed pipes."""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import earmark_cli
from data_recipes.audio import save_audio
from data_recipes.batch import AnswerLog, InputError, bounded, expand_inputs, run_batch


def _tone(seconds: float, at=(1.0, 2.0)) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    y = 0.01 * np.random.default_rng(0).standard_normal(t.size)
    on = (t >= at[0]) & (t < at[1])
    y[on] += 0.3 * np.sin(2 * np.pi * 1000 * t[on])
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def tiny_scorer(tmp_path_factory):
    """A random tiny scorer checkpoint of the real class (frame probabilities ~1e-4)."""
    import torch

    from contrastive.config import AudioConfig, ModelConfig
    from contrastive.model import create_model

    torch.manual_seed(0)
    model, _ = create_model(ModelConfig(audio=AudioConfig(channels=(8, 16, 32), width=32), embed_dim=32,
                                        dense_layers=1, dense_heads=2))
    path = tmp_path_factory.mktemp("scorer") / "tiny"
    model.save_pretrained(path)
    return path


@pytest.fixture
def clips(tmp_path):
    """A folder of two good clips (one in a subfolder) and a broken one."""
    root = tmp_path / "clips"
    (root / "sub").mkdir(parents=True)
    save_audio(root / "a.flac", _tone(3.0), 16000)
    save_audio(root / "sub" / "b.wav", _tone(2.0, (0.5, 1.5)), 16000)
    (root / "broken.wav").write_bytes(b"RIFF....not audio at all")
    (root / "notes.txt").write_text("not an audio file: skipped by the folder walk")
    return root


# ---- data_recipes.batch -------------------------------------------------------------------------
def test_expand_inputs_walks_folders_and_globs(clips, tmp_path):
    found = expand_inputs([str(clips)])
    assert [os.path.relpath(f, clips) for f in found] == ["a.flac", "broken.wav", os.path.join("sub", "b.wav")]
    assert expand_inputs([str(clips / "**" / "*.wav"), str(clips / "a.flac"), str(clips / "a.flac")]) == \
        [str(clips / "broken.wav"), str(clips / "sub" / "b.wav"), str(clips / "a.flac")]  # order kept, no duplicates
    (tmp_path / "empty").mkdir()
    for bad, msg in [(tmp_path / "missing.wav", "no such file or directory"), (tmp_path / "empty", "no audio files"),
                     (clips / "*.mp3", "no file matches")]:
        with pytest.raises(InputError, match=msg) as e:
            expand_inputs([str(bad)])
        assert str(bad) in str(e.value)


def test_bounded_rejects_absurd_values():
    median = bounded(float, 0.0, 10.0, unit="seconds")
    assert median("0.5") == 0.5
    for text in ("1e9", "-1", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be in \[0, 10\] seconds"):
            median(text)
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be in \(0, 1\)"):
        bounded(float, 0, 1, lo_open=True, hi_open=True)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="not an integer"):
        bounded(int, 0, 100)("2.5")


def test_answer_log_resumes_and_refuses_other_settings(tmp_path):
    path = tmp_path / "out.jsonl"
    log = AnswerLog(path, {"model": "m1"}, resume=False)
    log.write("a.wav", "dog", {"exists": True})
    log.close()
    with open(path, "a") as f:
        f.write('{"id": "a.wav::cat", "aud')  # a line torn by a crash
    with pytest.raises(FileExistsError, match="--resume"):
        AnswerLog(path, {"model": "m1"}, resume=False)
    with pytest.raises(ValueError, match="other settings.*model: 'm1' then, 'm2' now"):
        AnswerLog(path, {"model": "m2"}, resume=True)
    log = AnswerLog(path, {"model": "m1"}, resume=True)
    assert log.done("a.wav", "dog") and not log.done("a.wav", "cat")
    log.write("a.wav", "cat", {"exists": False})
    log.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x.get("query") for x in lines] == [None, "dog", "cat"] and lines[0]["header"] == {"model": "m1"}


def test_run_batch_reports_a_failure_and_goes_on(capsys):
    done = []

    def work(f):
        if f == "bad.wav":
            raise ValueError("bad.wav: not decodable")
        done.append(f)

    assert run_batch(["a.wav", "bad.wav", "c.wav"], work, prog="earmark x", errors=(ValueError,), progress=True) \
        == ["bad.wav"]
    err = capsys.readouterr().err
    assert done == ["a.wav", "c.wav"] and "earmark x: error: bad.wav: not decodable\n" in err
    assert "3/3" in err  # the progress bar knows its total


# ---- earmark detect -----------------------------------------------------------------------------
def _detect(argv, capsys):
    from contrastive.cli import detect_main

    code = detect_main(argv)
    return code, capsys.readouterr()


def test_detect_batch_out_resume_and_tsv(clips, tiny_scorer, tmp_path, capsys):
    from sed_scores_eval.base_modules.io import read_ground_truth_events

    out = tmp_path / "detect.jsonl"
    # thresholds low enough for a random scorer's ~1e-4 probabilities: every phrase present, events
    argv = ["-q", "beeping", "-q", "dog", str(clips), "--model", str(tiny_scorer), "--out", str(out),
            "--threshold", "1e-9", "--exists-threshold", "0", "--format", "tsv"]
    code, cap = _detect(argv, capsys)
    assert code == 1  # the broken file fails the run, after the others are done
    err = cap.err.strip().splitlines()
    assert len(err) == 2 and "broken.wav" in err[0] and err[0].startswith("earmark detect: error:")
    assert "1 of 3 recordings failed" in err[1]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["header"]["command"] == "detect" and len(lines) == 5
    assert {(os.path.basename(x["audio"]), x["query"]) for x in lines[1:]} == \
        {(f, q) for f in ("a.flac", "b.wav") for q in ("beeping", "dog")}
    assert all(x["present"] is True and x["events"] for x in lines[1:])
    tsv = tmp_path / "events.tsv"
    tsv.write_text(cap.out)
    events = read_ground_truth_events(tsv)
    assert {k.rsplit("/", 1)[-1] for k in events} == {"a", "b"} and all(len(v) == 2 for v in events.values())
    # resume: nothing answered twice; other settings are refused; no --resume, no overwrite
    code, cap = _detect(argv + ["--resume"], capsys)
    assert code == 1 and len(out.read_text().splitlines()) == 5
    code, cap = _detect(argv[:-6] + ["--threshold", "0.5", "--resume"], capsys)
    assert code == 1 and "other settings" in cap.err and "threshold" in cap.err
    code, cap = _detect(argv, capsys)
    assert code == 1 and "pass --resume" in cap.err


def test_detect_json_has_the_existence_decision(clips, tiny_scorer, capsys):
    code, cap = _detect([str(clips / "a.flac"), "beeping", "狗叫", "--model", str(tiny_scorer), "--json"], capsys)
    assert code == 0
    doc = json.loads(cap.out)
    first, second = doc["phrases"]
    assert first["present"] is False and first["exists"] < doc["exists_threshold"]  # a random scorer hears nothing
    assert first["notes"] == [] and "English-only" in second["notes"][0]
    code, cap = _detect([str(clips / "a.flac"), "beeping", "--model", str(tiny_scorer)], capsys)
    assert "ABSENT (existence 0.00, present at >=" in cap.out and "existence = the scorer's probability" in cap.out


def test_detect_checks_inputs_before_loading_the_model(tmp_path, capsys, monkeypatch):
    from contrastive import scorer

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(scorer.Scorer, "from_pretrained", no_load)
    code, cap = _detect([str(tmp_path / "missing.wav"), "dog"], capsys)
    assert code == 1 and cap.err == f"earmark detect: error: {tmp_path / 'missing.wav'}: no such file or directory\n"
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....")
    code, cap = _detect([str(bad), "dog"], capsys)
    assert code == 1 and "bad.wav" in cap.err and cap.err.count("\n") == 1


@pytest.mark.parametrize("argv, flag", [(["--median", "1e9"], "--median"), (["--median", "100000"], "--median"),
                                        (["--top-k", "-5"], "--top-k"), (["--threshold", "1"], "--threshold"),
                                        (["--exists-threshold", "nan"], "--exists-threshold")])
def test_detect_numeric_options_are_bounded(argv, flag, capsys):
    from contrastive.cli import detect_main

    with pytest.raises(SystemExit) as e:
        detect_main(["a.wav", "dog"] + argv)
    assert e.value.code == 2
    assert f"earmark detect: error: argument {flag}: must be in" in capsys.readouterr().err


def test_detect_one_recording_formats_refuse_a_batch(clips, tiny_scorer, capsys):
    from contrastive.cli import detect_main

    with pytest.raises(SystemExit) as e:
        detect_main(["-q", "dog", str(clips), "--format", "srt", "--model", str(tiny_scorer)])
    assert e.value.code == 2 and "--format srt describes one recording" in capsys.readouterr().err


def test_detect_plot_draws_the_filtered_curve_and_keeps_the_title_clear(tiny_scorer):
    from contrastive.cli import _plot_figure
    from contrastive.scorer import FrameScores, Scorer

    sc = Scorer.from_pretrained(tiny_scorer, threshold=0.5, median_seconds=0.5)
    rng = np.random.default_rng(0)
    scores = (0.1 * rng.random((20, 250))).astype(np.float32)
    scores[:, 100] = 0.9  # a one-frame spike: above the threshold raw, gone after the median filter
    fs = FrameScores([f"phrase number {i}" for i in range(20)], scores, sc.fps, 250 / sc.fps)
    fig = _plot_figure(sc, fs, sc.events(fs, fs.phrases), "clip.wav")
    smooth = sc.smoothed(fs)
    ax0 = fig.axes[0]
    raw_line, filtered_line = ax0.get_lines()[:2]
    np.testing.assert_allclose(filtered_line.get_ydata(), smooth[0])
    assert filtered_line.get_ydata().max() < 0.5 < raw_line.get_ydata().max() and raw_line.get_alpha() < 0.5
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    assert not title.overlaps(ax0.get_tightbbox(renderer))


def test_ask_plot_title_clear_of_twenty_panels():
    from grounding.ask_cli import answers_figure
    from grounding.pipeline import Answer, Window

    t = np.linspace(0, 10, 250)
    answers = [Answer(f"query {i}", True, [Window(1.0, 2.0, 0.7)], 0.6, "scorer", "scorer", "strict", 10.0,
                      thresholds={"scorer_threshold": 0.3}, curve=(t, 0.5 + 0.4 * np.sin(t))) for i in range(20)]
    fig = answers_figure(answers, title="clip.wav")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert not fig._suptitle.get_window_extent(renderer).overlaps(fig.axes[0].get_tightbbox(renderer))


# ---- earmark ask --------------------------------------------------------------------------------
def _ask(argv, capsys):
    from grounding.ask_cli import ask_main

    code = ask_main(argv)
    return code, capsys.readouterr()


def test_ask_batch_jsonl_and_no_answers(clips, tiny_scorer, tmp_path, capsys):
    out = tmp_path / "ask.jsonl"
    argv = ["-q", "beeping", "-q", "dog", str(clips / "a.flac"), str(clips / "sub"), "--scorer", str(tiny_scorer),
            "--mode", "scorer", "--format", "jsonl", "--out", str(out)]
    code, cap = _ask(argv, capsys)
    assert code == 0 and cap.err == ""
    printed = [json.loads(x) for x in cap.out.splitlines()]
    assert len(printed) == 4 and all(x["exists"] is False and x["windows"] == [] for x in printed)  # NO answers stay
    stored = [json.loads(x) for x in out.read_text().splitlines()]
    assert stored[0]["header"]["command"] == "ask" and stored[0]["header"]["mode"] == "scorer"
    assert [(x["audio"], x["query"]) for x in stored[1:]] == [(x["audio"], x["query"]) for x in printed]
    code, cap = _ask(argv + ["--resume"], capsys)
    assert code == 0 and cap.out == "" and len(out.read_text().splitlines()) == 5
    code, cap = _ask(argv + ["--resume", "--top-k", "2"], capsys)
    assert code == 1 and "other settings" in cap.err and "config" in cap.err


def test_ask_tsv_counts_all_occurrences(clips, tiny_scorer, capsys):
    base = [str(clips / "a.flac"), "beeping", "--scorer", str(tiny_scorer), "--mode", "scorer",
            "--scorer-threshold", "0", "--event-threshold", "0", "--top-k", "1"]
    code, cap = _ask(base + ["--format", "tsv"], capsys)
    assert code == 0
    rows = cap.out.splitlines()
    assert rows[0] == "filename\tonset\toffset\tevent_label" and len(rows) == 2 and rows[1].endswith("\tbeeping")
    code, cap = _ask(base + ["--json"], capsys)
    a = json.loads(cap.out)["answers"][0]
    assert a["events_total"] >= 1 and a["event_threshold"] == 0 and a["notes"] == []
    code, cap = _ask(base, capsys)
    assert "window confidence" in cap.out and "existence score = the scorer's probability" in cap.out


def test_ask_conflicting_and_unbounded_options(clips, tiny_scorer, capsys, monkeypatch):
    from grounding import api

    monkeypatch.setattr(api, "default_grounder_dir", lambda: None)
    clip = str(clips / "a.flac")
    code, cap = _ask([clip, "dog", "--mode", "scorer", "--engine", "vllm", "--scorer", str(tiny_scorer)], capsys)
    assert code == 2 and cap.err == ("earmark ask: error: --engine vllm: not used in mode scorer; drop it or "
                                     "choose a mode that uses it with --mode\n")
    # auto resolves to scorer (there is no grounder): the same refusal, saying why
    code, cap = _ask([clip, "dog", "--absent-below", "0.2", "--scorer", str(tiny_scorer)], capsys)
    assert code == 2 and "--absent-below 0.2: not used in mode scorer (auto chose it" in cap.err
    for argv, flag in [(["--top-k", "-5"], "--top-k"), (["--top-k", "100000"], "--top-k"),
                       (["--absent-below", "2"], "--absent-below"), (["--crop-seconds", "1e9"], "--crop-seconds")]:
        with pytest.raises(SystemExit) as e:
            _ask([clip, "dog"] + argv, capsys)
        assert e.value.code == 2 and f"argument {flag}: must be in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _ask([clip, "dog", "--json", "--format", "tsv"], capsys)
    assert "--json is --format json" in capsys.readouterr().err


# ---- the earmark dispatcher ---------------------------------------------------------------------
@pytest.mark.parametrize("argv, hint", [(["ask", "-q", "dog", "clips", "--out", "a.jsonl"], True),
                                        (["ask", "a.wav", "dog"], False),
                                        (["eval", "q.jsonl", "--predictor", "x", "--out", "o"], True),
                                        (["detect", "a.wav", "dog"], False)])
def test_ctrl_c_is_one_line_and_exit_130(argv, hint, capsys, monkeypatch):
    import contrastive.cli
    import eval.cli
    import grounding.ask_cli

    def interrupted(argv):
        raise KeyboardInterrupt

    for mod, name in ((grounding.ask_cli, "ask_main"), (eval.cli, "main"), (contrastive.cli, "detect_main")):
        monkeypatch.setattr(mod, name, interrupted)
    assert earmark_cli.main(argv) == 130
    err = capsys.readouterr().err
    assert err.startswith(f"earmark {argv[0]}: interrupted") and err.count("\n") == 1
    assert ("--resume" in err) == hint


@pytest.mark.parametrize("argv", [["--help"], ["ask", "--help"]])
def test_closed_pipe_is_quiet(argv):
    r, w = os.pipe()
    os.close(r)  # the reader is gone before anything is written, as with `| head -1` on a long output
    try:
        res = subprocess.run([sys.executable, "-m", "earmark_cli", *argv], stdout=w, stderr=subprocess.PIPE,
                             text=True, timeout=120)
    finally:
        os.close(w)
    # argparse swallows the error of its own help write (exit 0); ours is 141 (128 + SIGPIPE)
    assert res.returncode in (0, 141) and res.stderr == ""


def test_closed_pipe_in_process(monkeypatch):
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert earmark_cli.main(["--help"]) == 141


def test_unreadable_recording_in_a_batch_is_reported_and_skipped(clips, tiny_scorer, capsys, monkeypatch):
    import data_recipes.batch

    locked = clips / "sub" / "b.wav"
    # as a file without read permission looks to a normal user (root, which runs CI, reads anything)
    monkeypatch.setattr(data_recipes.batch, "_readable", lambda p: str(p) != str(locked))
    code, cap = _detect(["-q", "dog", str(clips / "a.flac"), str(locked), "--model", str(tiny_scorer),
                         "--format", "jsonl"], capsys)
    assert code == 1 and f"earmark detect: error: {locked}: permission denied" in cap.err
    assert [json.loads(x)["audio"] for x in cap.out.splitlines()] == [str(clips / "a.flac")]
    code, cap = _detect([str(locked), "dog"], capsys)  # alone: refused before the model loads
    assert code == 1 and cap.err == f"earmark detect: error: {locked}: permission denied (not readable)\n"
