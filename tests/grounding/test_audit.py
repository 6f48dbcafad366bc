"""`earmark audit`: negative queries, both stages, hallucination numbers, resumable files."""
from __future__ import annotations

import json

import pytest

from data_recipes.formats import PredictionRecord, QueryRecord, read_jsonl, write_jsonl
from data_recipes.queries import content_words
from grounding.ask_cli import audit_main
from grounding.audit import AuditConfig, build_audit_queries, summarise_audit
from pipeline_fakes import make_tiny_scorer


@pytest.fixture(scope="module")
def tiny_scorer(tmp_path_factory):
    return make_tiny_scorer(tmp_path_factory.mktemp("scorer") / "tiny")


def test_build_queries(toy_manifest):
    records, qs = build_audit_queries(toy_manifest, AuditConfig(negatives_per_positive=1, seed=3))
    assert len(records) == 6
    by_rec = {}
    for q in qs:
        by_rec.setdefault(q.audio_id, []).append(q)
    for r in records:
        pos = [q for q in by_rec.get(r.id, []) if not q.negative]
        neg = [q for q in by_rec.get(r.id, []) if q.negative]
        assert {q.query for q in pos} == {e.query for e in r.events}
        for n in neg:  # a negative never shares a content word with the recording's sounds
            assert not any(content_words(n.query) & content_words(e.query) for e in r.events)
    c2 = [q for q in qs if q.id == "c2/pos0"][0]
    assert c2.windows == [(0.5, 1.2), (3.0, 3.8)]  # both windows of one query
    assert any(q.audio_id == "c4" and q.negative for q in qs)  # a recording without events still gets asked
    assert build_audit_queries(toy_manifest, AuditConfig(seed=3))[1] == qs  # deterministic (resume)
    with pytest.raises(ValueError, match="no record has split 'test'"):
        build_audit_queries(toy_manifest, AuditConfig(split="test"))


def test_summary_numbers(tmp_path):
    """Hand-made answers: 4 negatives (one answered with windows, one "yes" without a window,
    one unparsed, one right) and 2 positives."""
    qs = [QueryRecord("a/neg0", "a", "rain", True), QueryRecord("a/neg1", "a", "rain", True),
          QueryRecord("b/neg0", "b", "siren", True), QueryRecord("b/neg1", "b", "siren", True),
          QueryRecord("a/pos0", "a", "dog", False, [(1.0, 2.0)]), QueryRecord("b/pos0", "b", "dog", False, [(0.0, 1.0)])]
    P = PredictionRecord.for_query
    preds = [P(qs[0], exists=True, windows=[(3.0, 4.0, 0.9)], status="strict", score=0.9),
             P(qs[1], exists=True, windows=[], status="unparsed", score=0.6),
             P(qs[2], exists=False, windows=[], status="unparsed"),
             P(qs[3], exists=False, windows=[], status="strict", score=0.1),
             P(qs[4], exists=True, windows=[(1.0, 2.0, 0.8)], status="strict", score=0.8),
             P(qs[5], exists=False, windows=[], status="strict", score=0.2)]
    write_jsonl(tmp_path / "predictions.jsonl", preds)
    answers = [{"id": "a/neg0", "exists": True, "windows": [[3.0, 4.0, 0.9]], "probe": None, "raw": {"exist": "Yes."},
                "decided_by": "llm", "llm_status": {"exist": "strict", "ground": "strict"}},
               {"id": "a/neg1", "exists": True, "windows": [], "probe": None, "decided_by": "llm",
                "llm_status": {"exist": "strict", "ground": "unparsed"}},
               {"id": "b/neg0", "exists": False, "windows": [], "probe": {"windows": [[1.0, 2.0]]}, "decided_by": "llm",
                "llm_status": {"exist": "unparsed"}},
               {"id": "b/neg1", "exists": False, "windows": [], "probe": {"windows": []}, "decided_by": "scorer-veto",
                "llm_status": {"exist": None}}]
    write_jsonl(tmp_path / "answers.jsonl", answers)
    s = summarise_audit(tmp_path, qs)
    assert s["hallucination_rate"] == 25.0        # a/neg0 only: windows for an absent sound
    assert s["false_yes_rate"] == 50.0            # a/neg0, a/neg1
    assert s["stage2_hallucination_rate"] == 50.0  # a/neg0 (final) + b/neg0 (probe) of 4 probed
    assert s["per_class"]["rain"] == {"n_pos": 0, "acc_pos": None, "n_neg": 2, "acc_neg": 0.0, "hallucination": 50.0,
                                      "miou": None}
    assert s["per_class"]["siren"]["acc_neg"] == 50.0  # the unparsed answer is not a right "no"
    assert s["per_class"]["dog"]["acc_pos"] == 50.0
    assert [w["id"] for w in s["worst_hallucinations"]] == ["a/neg0"]
    assert s["decided_by"] == {"llm": 3, "scorer-veto": 1} and s["status_counts"]["unparsed"] == 2
    assert s["stage_status"]["exist"] == {"strict": 2, "unparsed": 1, "not asked": 1}


def test_audit_cli_scorer_mode_resumes(toy_manifest, tiny_scorer, tmp_path, capsys):
    out = tmp_path / "audit"
    argv = [str(toy_manifest), "--out", str(out), "--scorer", str(tiny_scorer), "--mode", "scorer", "--no-progress"]
    assert audit_main(argv) == 0
    qs = read_jsonl(out / "queries.jsonl", QueryRecord)
    preds = read_jsonl(out / "predictions.jsonl", PredictionRecord)
    assert [p.id for p in preds] == [q.id for q in qs] and all(p.engine == "earmark-scorer" for p in preds)
    summary = json.loads((out / "audit.json").read_text())
    assert summary["n_queries"] == len(qs) and summary["accuracy_negative"] is not None  # eval's numbers came back
    assert (out / "eval" / "metrics.json").is_file() and (out / "audit.md").is_file() and (out / "scores.png").is_file()
    md = (out / "audit.md").read_text()
    assert "hallucination rate" in md and "## Per class" in md and "beeping tone" in md
    # a crash mid-run: 3 complete lines and a torn one; --resume answers the rest exactly once
    lines = (out / "predictions.jsonl").read_text().splitlines(keepends=True)
    (out / "predictions.jsonl").write_text("".join(lines[:3]) + lines[3][:20])
    capsys.readouterr()
    assert audit_main(argv) == 1  # without --resume an existing run is not mixed with a new one
    assert "--resume" in capsys.readouterr().err
    assert audit_main(argv + ["--resume"]) == 0
    assert f"{len(qs) - 3} answered now" in capsys.readouterr().out
    again = read_jsonl(out / "predictions.jsonl", PredictionRecord)
    assert sorted(p.id for p in again) == sorted(q.id for q in qs)
    # resuming with other queries is refused rather than mixed
    assert audit_main(argv + ["--resume", "--seed", "7"]) == 1
    assert "differ from the stored ones" in capsys.readouterr().err


def test_audit_cli_llm_both_stages(toy_manifest, tiny_dirs, tmp_path, capsys):
    out = tmp_path / "audit"
    cfg = tmp_path / "pipeline.json"
    cfg.write_text(json.dumps({"max_new_tokens_ground": 6}))  # a random model never stops: keep answers short
    argv = [str(toy_manifest), "--out", str(out), "--grounder", str(tiny_dirs["qwen2-audio"]), "--mode", "llm",
            "--limit", "2", "--no-progress", "--no-plots", "--config", str(cfg)]
    assert audit_main(argv) == 0
    answers = [json.loads(x) for x in (out / "answers.jsonl").read_text().splitlines()]
    assert answers and all(a["raw"]["exist"] is not None for a in answers)
    # every query got a localisation answer: after "yes" as stage 2, after "no" as the probe
    assert all((a["probe"] is not None) != a["exists"] for a in answers)
    assert all(a["thresholds"] == {} and a["mode"] == "llm" for a in answers)
    summary = json.loads((out / "audit.json").read_text())
    assert summary["stage2_probed"] == summary["n_negative"] and summary["stage2_hallucination_rate"] is not None


def test_verifier_sweep():
    from grounding.audit import verifier_sweep

    def a(neg, llm, p):
        return {"mode": "fused", "negative": neg, "raw": {"exist": llm}, "scorer": {"p_exists": p}}

    answers = [a(False, "Yes.", 0.9), a(False, "Yes.", 0.15), a(False, "No.", 0.9),
               a(True, "Yes.", 0.08), a(True, "Yes.", 0.4), a(True, "gibberish", 0.9)]
    rows = {r["absent_below"]: r for r in verifier_sweep(answers, grid=(0.0, 0.1, 0.2, 0.5))}
    assert rows[0.0] == {"absent_below": 0.0, "acc_pos": pytest.approx(200 / 3, abs=0.01), "acc_neg": pytest.approx(100 / 3, abs=0.01)}
    assert rows[0.1]["acc_neg"] == pytest.approx(200 / 3, abs=0.01)   # the 0.08 hallucination vetoed
    assert rows[0.2]["acc_pos"] == pytest.approx(100 / 3, abs=0.01)   # ...and at 0.2 a true "yes" (0.15) lost
    assert rows[0.5]["acc_neg"] == 100.0
    assert verifier_sweep([dict(answers[0], mode="llm")]) is None


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_audit_plots_keep_legends_and_labels_apart():
    """Defect: threshold labels and legends were drawn over each other and over the bars."""
    from grounding.audit import classes_figure, scores_figure

    fig = scores_figure([0.9, 0.8, 0.7], [0.1, 0.05, 0.12],
                        {"absent_below": 0.1, "present_above": 0.11, "scorer_threshold": 0.12})
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax, leg = fig.axes[0], fig.legends[0]
    assert not _overlap(leg.get_window_extent(r), ax.get_window_extent(r))
    assert len(leg.get_texts()) == 5 and not ax.texts   # the three close thresholds are legend entries
    items = [(f"class {i}", {"acc_pos": 100.0, "acc_neg": 100.0, "hallucination": 50.0}) for i in range(20)]
    fig = classes_figure(items)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    assert not _overlap(fig.legends[0].get_window_extent(r), fig.axes[0].get_window_extent(r))
