"""Existence decisions chosen on held-out queries and stored with the checkpoint."""
from __future__ import annotations

import json

import pytest

from contrastive.evaluate import fit_decision_thresholds
from data_recipes.formats import ManifestRecord, QueryRecord, write_jsonl


class TableScorer:
    """``exists`` from a table keyed by (audio file name, query)."""

    def __init__(self, table: dict):
        self.table = table

    def embed(self, path):
        return path.name

    def exists(self, emb, query):
        return self.table[(emb, query)]

    def candidates(self, emb, query, k, rel):
        # a triangular bump of half-width 1 s peaking at 1.5 s: above rel x peak for (1 - rel) s each side
        h = 1.0 - rel
        return [(1.5 - h, 1.5 + h, 0.9)]


def _data(tmp_path, probs):
    recs = [ManifestRecord(f"a{i}", f"a{i}.flac", 10.0, [], split="val") for i in range(len(probs))]
    write_jsonl(tmp_path / "m.jsonl", recs)
    qs, table = [], {}
    for i, (p_pos, p_neg) in enumerate(probs):
        qs += [QueryRecord(f"a{i}-p", f"a{i}", "dog", False, [(1.0, 2.0)]), QueryRecord(f"a{i}-n", f"a{i}", "cat", True)]
        table[(f"a{i}.flac", "dog")], table[(f"a{i}.flac", "cat")] = p_pos, p_neg
    write_jsonl(tmp_path / "q.jsonl", qs)
    return TableScorer(table)


def test_thresholds_by_hand(tmp_path):
    # positives 0.30 0.20 0.05 0.04, negatives 0.10 0.03 0.02 0.01
    sc = _data(tmp_path, [(0.30, 0.10), (0.20, 0.03), (0.05, 0.02), (0.04, 0.01)])
    d = fit_decision_thresholds(sc, tmp_path / "q.jsonl", tmp_path / "m.jsonl", keep_positives=0.75, progress=False)
    # F1 by threshold: 0.04 -> 4 tp, 5 predicted: 8/9; 0.05 -> 3/4 ... 0.04 is best (0.889)
    assert d["exists_threshold"] == pytest.approx(0.04) and d["exists_f1"] == pytest.approx(8 / 9, abs=1e-4)
    # keep 75 % of positives above absent_below: the 25 % quantile of the positives
    assert d["absent_below"] == pytest.approx(0.0475, abs=1e-4)
    assert (d["n_positive"], d["n_negative"]) == (4, 4) and d["auroc"] == pytest.approx(14 / 16)  # 0.05 and 0.04 lose to the 0.10 negative
    # candidate windows vs the true (1, 2): rel 0.5 grows exactly onto it; rel 0.2 gives (0.7, 2.3), IoU 1/1.6
    assert d["candidate_rel"] == 0.5
    assert d["candidate_top1_iou"]["0.5"] == pytest.approx(1.0) and d["candidate_top1_iou"]["0.2"] == pytest.approx(0.625)
    assert d["candidate_top1_iou"]["0.6"] == pytest.approx(0.8)  # (1.1, 1.9)


def test_needs_both_kinds_and_known_audio(tmp_path):
    sc = _data(tmp_path, [(0.3, 0.1)])
    write_jsonl(tmp_path / "q2.jsonl", [QueryRecord("x", "a0", "dog", False, [(1.0, 2.0)])])
    with pytest.raises(ValueError, match="both positive and negative"):
        fit_decision_thresholds(sc, tmp_path / "q2.jsonl", tmp_path / "m.jsonl", progress=False)
    write_jsonl(tmp_path / "q3.jsonl", [QueryRecord("x", "zz", "dog", False, [(1.0, 2.0)])])
    with pytest.raises(ValueError, match="not in"):
        fit_decision_thresholds(sc, tmp_path / "q3.jsonl", tmp_path / "m.jsonl", progress=False)


def test_stored_thresholds_are_what_the_scorer_loads(tmp_path):
    import shutil

    from contrastive.scorer import DEFAULT_DIR, Scorer

    ck = tmp_path / "ck"
    shutil.copytree(DEFAULT_DIR, ck)
    meta = json.loads((ck / "config.json").read_text())
    meta.setdefault("inference", {})["decision"] = {"exists_threshold": 0.07, "absent_below": 0.02, "candidate_rel": 0.3}
    (ck / "config.json").write_text(json.dumps(meta))
    s = Scorer.from_pretrained(ck)
    assert (s.exists_threshold, s.absent_below, s.candidate_rel) == (0.07, 0.02, 0.3)
    import numpy as np

    y = np.sin(np.linspace(0, 300, 16000 * 4)).astype(np.float32) * np.linspace(0, 1, 16000 * 4, dtype=np.float32)
    assert s.candidates(y, "a tone", k=2) == s.candidates(y, "a tone", k=2, rel=0.3)
    with pytest.raises(ValueError, match="candidate_rel"):
        Scorer.from_pretrained(ck, candidate_rel=0.0)
    assert Scorer.from_pretrained(ck, exists_threshold=0.3).exists_threshold == 0.3
    with pytest.raises(ValueError, match="exists_threshold"):
        Scorer.from_pretrained(ck, exists_threshold=1.5)


class TwoClapScorer(TableScorer):
    """Two instances, (1, 2) and (2.5, 3.5): a low rel grows the best candidate over both (one
    window 1-3.5 s), a high rel keeps them apart as two candidates of nearly the same peak."""

    def candidates(self, emb, query, k, rel):
        if rel < 0.3:
            return [(1.0, 3.5, 0.9), (5.0, 6.0, 0.1)][:k]
        return [(1.0, 2.0, 0.9), (2.5, 3.5, 0.8), (5.0, 6.0, 0.1)][:k]


def test_candidate_rel_is_chosen_by_the_answer_not_the_best_single_window(tmp_path):
    recs = [ManifestRecord("a0", "a0.flac", 10.0, [], split="val")]
    write_jsonl(tmp_path / "m.jsonl", recs)
    write_jsonl(tmp_path / "q.jsonl", [QueryRecord("p", "a0", "thunder", False, [(1.0, 2.0), (2.5, 3.5)]),
                                       QueryRecord("n", "a0", "cat", True)])
    sc = TwoClapScorer({("a0.flac", "thunder"): 0.9, ("a0.flac", "cat"): 0.1})
    d = fit_decision_thresholds(sc, tmp_path / "q.jsonl", tmp_path / "m.jsonl", progress=False, rels=(0.1, 0.5))
    # the best single window prefers the merged one (IoU 2 / 2.5 = 0.8 against 1 / 2 = 0.5) ...
    assert d["candidate_top1_iou"] == {"0.1": pytest.approx(0.8), "0.5": pytest.approx(0.5)}
    # ... but the answer (top 3 candidates, those above half the best peak, merged) is exact at 0.5
    assert d["candidate_answer_iou"] == {"0.1": pytest.approx(0.8), "0.5": pytest.approx(1.0)}
    assert d["candidate_rel"] == 0.5 and d["answer_rule"] == {"top_k": 3, "peak_ratio": 0.5}


def test_peak_windows_keeps_near_peaks_and_merges_touching_ones():
    from contrastive.scorer import peak_windows

    assert peak_windows([(1.0, 2.0, 0.9), (2.0, 2.5, 0.5), (5.0, 6.0, 0.4)]) == [(1.0, 2.5, 0.9)]
    assert peak_windows([(5.0, 6.0, 0.6), (1.0, 2.0, 1.0)], peak_ratio=0.5) == [(1.0, 2.0, 1.0), (5.0, 6.0, 0.6)]
    assert peak_windows([]) == []
