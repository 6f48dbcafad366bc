import json

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import median_filter as scipy_median

from data_recipes.formats import Event, ManifestRecord, write_jsonl
from eval.cli import main
from eval.postprocess import detect_events, median_filter
from eval.sed_metrics import (PSDS1, PSDS1_AST0, PSDS2, PSDS_GROUNDING, SedEvalConfig, evaluate_sed,
                              read_scores)

CLASSES = ["dog barking", "car horn", "speech"]


class _Writable(pd.DataFrame):
    """Test-local: sed_scores_eval 0.0.4's Cython needs writable arrays, pandas 3 hands out
    read-only ones. Independent of eval's own shim, so the comparison below is direct."""

    @property
    def _constructor(self):
        return _Writable

    def to_numpy(self, *a, **k):
        return np.array(super().to_numpy(*a, **k), copy=True)


def _synthetic(n_audio=8, seed=0, hop=0.1, duration=10.0):
    """Noisy scores that rise inside the true events: (triples, frames, ground truth, durations)."""
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    rng = np.random.default_rng(seed)
    triples, frames, gt, durs = {}, {}, {}, {}
    T = int(round(duration / hop))
    ts = np.round(np.arange(T + 1) * hop, 6)
    for i in range(n_audio):
        aid = f"a{i}"
        events = []
        for c in CLASSES:
            for _ in range(int(rng.integers(1, 3))):
                s = round(float(rng.uniform(0, duration - 2)), 1)
                events.append((s, round(s + float(rng.uniform(0.3, 1.5)), 1), c))
        # keep same-class events apart (the manifest guarantees it; sed_scores_eval asserts it)
        events.sort()
        kept = []
        for ev in events:
            if all(ev[2] != k[2] or ev[0] > k[1] + 0.2 or ev[1] < k[0] - 0.2 for k in kept):
                kept.append(ev)
        m = rng.random((T, len(CLASSES))) * 0.6
        for s, e, c in kept:
            m[int(s / hop):int(e / hop), CLASSES.index(c)] += rng.uniform(0.2, 0.6)
        triples[aid] = (ts, CLASSES, m)
        frames[aid] = _Writable(create_score_dataframe(m, ts, CLASSES))
        gt[aid] = kept
        durs[aid] = duration
    return triples, frames, gt, durs


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic()


@pytest.fixture(scope="module")
def metrics(synthetic):
    triples, _, gt, durs = synthetic
    return evaluate_sed(triples, gt, durs, config=SedEvalConfig(psds_settings=("psds1", "psds2", "grounding",
                                                                              "psds1_ast0")))


@pytest.mark.parametrize("setting", [PSDS1, PSDS2, PSDS_GROUNDING, PSDS1_AST0], ids=lambda s: s.name)
def test_psds_equals_sed_scores_eval_called_directly(synthetic, metrics, setting):
    from sed_scores_eval import intersection_based

    _, frames, gt, durs = synthetic
    direct, per_class, _, _ = intersection_based.psds(
        frames, gt, durs, dtc_threshold=setting.dtc_threshold, gtc_threshold=setting.gtc_threshold,
        cttc_threshold=setting.cttc_threshold, alpha_ct=setting.alpha_ct, alpha_st=setting.alpha_st,
        unit_of_time="hour", max_efpr=setting.max_efpr)
    assert metrics.psds[setting.name] == pytest.approx(direct, abs=1e-6)
    for c in CLASSES:
        assert metrics.psds_per_class[setting.name][c] == pytest.approx(per_class[c], abs=1e-6)
    assert 0.0 < metrics.psds[setting.name] < 1.0  # informative: neither trivially 0 nor 1


def test_psds1_without_std_penalty_only_drops_the_penalty(metrics):
    # per-class PSDS has no across-class spread, so only the aggregate differs, and upwards
    assert metrics.psds_per_class["psds1_ast0"] == pytest.approx(metrics.psds_per_class["psds1"])
    assert metrics.psds["psds1_ast0"] > metrics.psds["psds1"]


def test_auroc_mpauc_f1_equal_sed_scores_eval(synthetic, metrics):
    from sed_scores_eval import collar_based, segment_based

    _, frames, gt, durs = synthetic
    au, _ = segment_based.auroc(frames, gt, durs, segment_length=0.1)
    pa, _ = segment_based.auroc(frames, gt, durs, segment_length=1.0, max_fpr=0.1)
    f, *_ = collar_based.fscore(frames, gt, 0.5, onset_collar=0.2, offset_collar=0.2, offset_collar_rate=0.2)
    assert metrics.auroc == pytest.approx(au["mean"], abs=1e-9)
    assert metrics.mpauc == pytest.approx(pa["mean"], abs=1e-9)
    assert metrics.collar_f1["macro"] == pytest.approx(f["macro_average"], abs=1e-9)
    assert metrics.auroc_segment_length == pytest.approx(0.1)
    json.dumps(metrics.to_dict())  # JSON-serialisable


def test_perfect_scores_are_perfect():
    ts = np.round(np.arange(101) * 0.1, 6)
    gt = {"x": [(1.0, 2.0, "a"), (5.0, 7.0, "b")], "y": [(3.0, 4.0, "a")]}
    scores = {}
    for k, evs in gt.items():
        m = np.zeros((100, 2))
        for s, e, c in evs:
            m[int(round(s * 10)):int(round(e * 10)), ["a", "b"].index(c)] = 1.0
        scores[k] = (ts, ["a", "b"], m)
    r = evaluate_sed(scores, gt, {"x": 10.0, "y": 10.0}, config=SedEvalConfig(mpauc_segment_length=0.5))
    assert r.psds1 == pytest.approx(1.0) and r.psds2 == pytest.approx(1.0) and r.psds_grounding == pytest.approx(1.0)
    assert r.auroc == pytest.approx(1.0) and r.mpauc == pytest.approx(1.0)
    assert r.collar_f1["macro"] == pytest.approx(1.0)


def test_classes_without_events_are_listed_not_silently_used():
    ts = np.round(np.arange(51) * 0.2, 6)
    m = np.random.default_rng(0).random((50, 2))
    r = evaluate_sed({"x": (ts, ["a", "ghost"], m)}, {"x": [(1.0, 3.0, "a")]}, {"x": 10.0})
    assert r.classes == ["a"] and r.classes_without_events == ["ghost"]
    assert set(r.psds_per_class["psds1"]) == {"a"}


def test_touching_events_are_merged():
    ts = np.round(np.arange(51) * 0.2, 6)
    m = np.zeros((50, 1))
    m[5:20, 0] = 1.0
    r = evaluate_sed({"x": (ts, ["a"], m)}, {"x": [(1.0, 2.0, "a"), (2.0, 4.0, "a")]}, {"x": 10.0})
    assert r.n_events == 1 and r.psds1 == pytest.approx(1.0)


def test_bad_inputs_raise_one_clear_error(synthetic):
    triples, _, gt, durs = synthetic
    with pytest.raises(ValueError, match=r"Missing ids: \['a0'\]"):
        evaluate_sed(triples, {k: v for k, v in gt.items() if k != "a0"}, durs)
    with pytest.raises(ValueError, match="'cat' is not among the scored classes"):
        evaluate_sed(triples, {**gt, "a1": gt["a1"] + [(0.1, 0.2, "cat")]}, durs)
    dropped = evaluate_sed(triples, {**gt, "a1": gt["a1"] + [(0.1, 0.2, "cat")]}, durs,
                           config=SedEvalConfig(psds_settings=("psds1",), unscored_events="drop"))
    assert dropped.n_unscored_events == 1
    ts, cl, m = triples["a2"]
    bad = m.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="scores of 'a2'.*NaN"):
        evaluate_sed({**triples, "a2": (ts, cl, bad)}, gt, durs)
    with pytest.raises(ValueError, match="scores of 'a2'"):
        evaluate_sed({**triples, "a2": (ts[:-1], cl, m)}, gt, durs)
    with pytest.raises(ValueError, match="psds_settings"):
        SedEvalConfig(psds_settings=("psds3",))


def test_median_filter_is_explicit_and_matches_scipy():
    x = np.random.default_rng(0).random((40, 3))
    y = median_filter(x, filter_length=3)
    assert np.allclose(y, scipy_median(x, size=(3, 1), mode="nearest"))
    assert np.array_equal(median_filter(x, filter_length=1), x)
    # a one-frame spike disappears, a three-frame plateau stays
    z = np.zeros((20, 1))
    z[5, 0] = 1
    z[10:13, 0] = 1
    f = median_filter(z, filter_length=3)
    assert f[5, 0] == 0 and f[10:13, 0].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="odd"):
        median_filter(x, filter_length=2)


def test_detect_events_thresholds_runs_of_frames():
    ts = np.round(np.arange(11) * 0.5, 6)
    m = np.zeros((10, 2))
    m[2:5, 0] = 0.9
    m[7:9, 1] = 0.6
    from eval.sed_metrics import as_score_frame

    frame = as_score_frame((ts, ["a", "b"], m))
    assert detect_events(frame, threshold=0.5) == [(1.0, 2.5, "a"), (3.5, 4.5, "b")]
    assert detect_events(frame, threshold={"a": 0.95, "b": 0.5}) == [(3.5, 4.5, "b")]


def test_sed_cli_reads_native_tsv_scores(tmp_path, synthetic):
    from sed_scores_eval.base_modules.io import write_sed_scores

    triples, frames, gt, durs = synthetic
    write_sed_scores({k: pd.DataFrame(v) for k, v in frames.items()}, tmp_path / "scores")
    manifest = [ManifestRecord(k, f"audio/{k}.flac", durs[k], [Event(c, s, e) for s, e, c in gt[k]]) for k in gt]
    write_jsonl(tmp_path / "m.jsonl", manifest)
    out = tmp_path / "out"
    assert main(["sed", str(tmp_path / "scores"), "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out),
                 "--median-filter", "1"]) == 0
    data = json.loads((out / "sed_metrics.json").read_text())
    direct = evaluate_sed(read_scores(tmp_path / "scores"), gt, durs)
    assert data["psds"]["psds1"] == pytest.approx(direct.psds1, abs=1e-9)
    assert data["median_filter"] == 1
    assert (out / "psd_roc.png").stat().st_size > 1000
    # with the default 3-frame median filter the numbers are those of the filtered scores
    assert main(["sed", str(tmp_path / "scores"), "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out)]) == 0
    filtered = evaluate_sed(median_filter(read_scores(tmp_path / "scores"), filter_length=3), gt, durs)
    assert json.loads((out / "sed_metrics.json").read_text())["psds"]["psds1"] == pytest.approx(filtered.psds1)
    # a scored audio id the manifest lacks: one clear error
    write_jsonl(tmp_path / "m2.jsonl", manifest[1:])
    assert main(["sed", str(tmp_path / "scores"), "--manifest", str(tmp_path / "m2.jsonl"), "--out", str(out)]) == 1
