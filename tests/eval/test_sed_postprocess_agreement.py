"""`earmark contrastive eval` and `earmark eval sed` on the same score files: one median filter,
said on screen and in the metrics, so the same filter gives the same numbers. contrastive eval
defaults to the scorer's own detection filter, eval sed (which knows no scorer) to 3 frames."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data_recipes.formats import Event, ManifestRecord, write_jsonl
from eval.postprocess import DEFAULT_MEDIAN_FILTER, median_filter
from eval.sed_metrics import SedEvalConfig, evaluate_sed, ground_truth_from_manifest, read_scores

CLASSES = ["car horn", "dog barking"]
FPS, DURATION = 10.0, 12.0


class FixedScorer:
    """Frame scores set per audio id (noisy, higher inside the true events), as a scorer gives them."""

    median_seconds = 0.3    # 3 frames at FPS: the same as eval sed's default
    fps = FPS

    def __init__(self, scores):
        self.scores = scores

    def frame_scores(self, audio, phrases):
        from contrastive.scorer import FrameScores

        rows = self.scores[audio.stem]
        return FrameScores(list(phrases), np.stack([rows[p] for p in phrases]).astype(np.float32), FPS, DURATION)

    def smoothed(self, fs, median_seconds=None):
        raise AssertionError("contrastive eval must write raw scores")


@pytest.fixture()
def scored(tmp_path):
    rng = np.random.default_rng(0)
    T = int(DURATION * FPS)
    records, scores = [], {}
    for i in range(6):
        aid = f"clip{i}"
        events = [Event("dog barking", 1.0 + i * 0.5, 3.0 + i * 0.5), Event("car horn", 6.0, 7.5 + 0.3 * i)]
        rows = {}
        for c in CLASSES:
            r = rng.random(T) * 0.6
            for e in events:
                if e.query == c:
                    r[int(e.start * FPS):int(e.end * FPS)] += 0.4
            r[rng.integers(0, T, 4)] = 0.99     # isolated spikes: what a median filter removes
            rows[c] = r
        scores[aid] = rows
        records.append(ManifestRecord(aid, f"audio/{aid}.flac", DURATION, events))
    write_jsonl(tmp_path / "m.jsonl", records)
    return tmp_path / "m.jsonl", FixedScorer(scores)


def run_contrastive_eval(monkeypatch, manifest, scorer, out, *extra):
    from contrastive import scorer as scorer_mod
    from contrastive.cli import main

    monkeypatch.setattr(scorer_mod.Scorer, "from_pretrained", classmethod(lambda cls, path=None, **kw: scorer))
    return main(["eval", "ckpt", str(manifest), "--out", str(out), "--psds", "psds1", *extra])


def test_same_score_files_same_psds_and_the_filter_is_said(scored, tmp_path, monkeypatch, capsys):
    from eval.cli import main as eval_main

    manifest, scorer = scored
    out = tmp_path / "ce"
    assert run_contrastive_eval(monkeypatch, manifest, scorer, out) == 0
    said_c = capsys.readouterr().out
    ce = json.loads((out / "metrics.json").read_text())
    assert eval_main(["sed", str(out / "scores"), "--manifest", str(manifest), "--out", str(tmp_path / "es")]) == 0
    said_e = capsys.readouterr().out
    es = json.loads((tmp_path / "es" / "sed_metrics.json").read_text())
    assert ce["psds"]["psds1"] == pytest.approx(es["psds"]["psds1"], abs=1e-12)
    assert ce["median_filter"] == es["median_filter"] == DEFAULT_MEDIAN_FILTER == 3   # the scorer's 0.3 s
    for said in (said_c, said_e):
        assert "median filter of 3 frames, 0.30 s" in said
    # the files hold the raw scores, and the number is that of the 3-frame filtered ones
    raw = read_scores(out / "scores")
    assert np.allclose(raw["clip0"]["dog barking"].to_numpy(), scorer.scores["clip0"]["dog barking"], atol=1e-5)
    gt, durs = ground_truth_from_manifest(manifest, list(raw))
    want = evaluate_sed(median_filter(raw, filter_length=3), gt, durs, config=SedEvalConfig(psds_settings=("psds1",)))
    unfiltered = evaluate_sed(raw, gt, durs, config=SedEvalConfig(psds_settings=("psds1",)))
    assert ce["psds"]["psds1"] == pytest.approx(want.psds1) and ce["segment_auroc"] == pytest.approx(want.auroc)
    assert es["auroc"] == pytest.approx(want.auroc) and want.auroc != pytest.approx(unfiltered.auroc)
    assert want.psds_per_class["psds1"] != pytest.approx(unfiltered.psds_per_class["psds1"])


def test_contrastive_eval_defaults_to_the_scorers_own_filter(scored, tmp_path, monkeypatch, capsys):
    manifest, scorer = scored
    scorer.median_seconds = 0.7
    assert run_contrastive_eval(monkeypatch, manifest, scorer, tmp_path / "ce") == 0
    assert "median filter of 7 frames, 0.70 s" in capsys.readouterr().out
    assert json.loads((tmp_path / "ce" / "metrics.json").read_text())["median_filter"] == 7


def test_both_take_the_same_filter_option(scored, tmp_path, monkeypatch, capsys):
    from eval.cli import main as eval_main

    manifest, scorer = scored
    out = tmp_path / "ce"
    assert run_contrastive_eval(monkeypatch, manifest, scorer, out, "--median-filter", "1") == 0
    assert "no median filter" in capsys.readouterr().out
    assert eval_main(["sed", str(out / "scores"), "--manifest", str(manifest), "--out", str(tmp_path / "es"),
                      "--median-filter", "1"]) == 0
    assert "no median filter" in capsys.readouterr().out
    ce = json.loads((out / "metrics.json").read_text())
    es = json.loads((tmp_path / "es" / "sed_metrics.json").read_text())
    assert ce["psds"]["psds1"] == pytest.approx(es["psds"]["psds1"], abs=1e-12)
    assert run_contrastive_eval(monkeypatch, manifest, scorer, out, "--median-filter", "4") == 2
    assert "--median-filter" in capsys.readouterr().err
    assert eval_main(["sed", str(out / "scores"), "--manifest", str(manifest), "--out", str(tmp_path / "es"),
                      "--median-filter", "0"]) == 1
    for huge in ("1000001", "-5"):
        assert run_contrastive_eval(monkeypatch, manifest, scorer, out, "--median-filter", huge) == 2
        assert eval_main(["sed", str(out / "scores"), "--manifest", str(manifest), "--out", str(tmp_path / "es"),
                          "--median-filter", huge]) == 1
        assert "from 1 to 1001" in capsys.readouterr().err


def test_a_score_directory_of_filtered_files_is_not_resumed_raw(scored, tmp_path, monkeypatch, capsys):
    manifest, scorer = scored
    out = tmp_path / "old"
    (out / "scores").mkdir(parents=True)
    (out / "scores" / "clip0.tsv").write_text("onset\toffset\tcar horn\tdog barking\n0.0\t0.1\t0.5\t0.5\n")
    assert run_contrastive_eval(monkeypatch, manifest, scorer, out) == 2   # written before score_files.json
    err = capsys.readouterr().err
    assert "unrecorded filter" in err and "another --out" in err
