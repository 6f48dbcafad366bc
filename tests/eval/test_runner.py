import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_recipes.formats import (Event, ManifestRecord, PredictionRecord, QueryRecord, read_jsonl, write_jsonl)
from eval.cli import main
from eval.predictors import OraclePredictor, RandomPredictor, load_predictor, parse_predictor_args
from eval.runner import run_eval
from eval.scoring import score_files

REPO = Path(__file__).resolve().parents[2]


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())["overall"]


def test_oracle_is_perfect(bench, tmp_path):
    out = tmp_path / "run"
    assert main([str(bench.queries), "--manifest", str(bench.manifest), "--predictor", "oracle", "--out", str(out),
                 "--no-progress"]) == 0
    m = _metrics(out)
    assert m["miou"] == 100.0 and m["r1"] == {"0.3": 100.0, "0.5": 100.0, "0.7": 100.0}
    assert m["f1"]["f1"] == 100.0 and m["existence"]["positive"] == 100.0 and m["existence"]["negative"] == 100.0
    assert m["status_counts"] == {"strict": len(bench.query_records)}
    report = (out / "report.md").read_text()
    assert "| unparsed | 0 |" in report and "![IoU histogram](iou_hist.png)" in report
    assert (out / "iou_hist.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    assert len(rows) == len(bench.query_records)
    assert {r["cell"] for r in rows} == {"tp", "tn"} and all(r["iou"] == 1.0 for r in rows if not r["negative"])


def test_whole_clip_matches_the_analytic_numbers(tmp_path):
    # one 10 s file; whole-clip predicts (0, 10) for every query, so IoU = |∪ true| / 10
    root = tmp_path / "b"
    (root / "audio").mkdir(parents=True)
    sf.write(root / "audio" / "x.flac", np.zeros(160000, "float32"), 16000)
    write_jsonl(root / "m.jsonl", [ManifestRecord("x", "audio/x.flac", 10.0, [Event("a", 0, 5)])])
    write_jsonl(root / "q.jsonl", [
        QueryRecord("A", "x", "a", False, [(0.0, 5.0)]),                 # IoU 0.5
        QueryRecord("B", "x", "b", False, [(2.0, 3.0)]),                 # IoU 0.1
        QueryRecord("C", "x", "c", False, [(0.0, 4.0), (6.0, 10.0)]),    # IoU 0.8
        QueryRecord("N", "x", "n", True, []),                            # "yes" on a negative
    ])
    out = tmp_path / "wc"
    assert main([str(root / "q.jsonl"), "--manifest", str(root / "m.jsonl"), "--predictor", "whole-clip",
                 "--out", str(out), "--no-progress", "--no-plots"]) == 0
    m = _metrics(out)
    assert m["miou"] == pytest.approx(100 * (0.5 + 0.1 + 0.8) / 3)
    assert m["r1"]["0.3"] == pytest.approx(200 / 3) and m["r1"]["0.5"] == pytest.approx(200 / 3)
    assert m["r1"]["0.7"] == pytest.approx(100 / 3)
    assert m["existence"]["positive"] == 100.0 and m["existence"]["negative"] == 0.0
    # TP: A, C; FP: B (IoU 0.1 <= 0.3) and N; FN: none -> F1 = 2*2 / (2*2 + 2 + 0)
    assert (m["f1"]["tp"], m["f1"]["fp"], m["f1"]["fn"], m["f1"]["tn"]) == (2, 2, 0, 0)
    assert m["f1"]["f1"] == pytest.approx(100 * 4 / 6)


def test_random_is_deterministic_per_seed(bench):
    qs = bench.query_records
    audio = bench.root / bench.records[0].audio
    a = RandomPredictor(seed=3).predict(audio, qs[:3])
    b = RandomPredictor(seed=3).predict(audio, list(reversed(qs[:3])))
    assert {p.id: p.windows for p in a} == {p.id: p.windows for p in b}
    c = RandomPredictor(seed=4).predict(audio, qs[:3])
    assert [p.to_dict() for p in a] != [p.to_dict() for p in c]


class _Flaky:
    """Raises for one audio file, returns junk for another, drops a query on a third."""

    engine = "flaky"

    def predict(self, audio_path, queries):
        name = Path(audio_path).stem
        if name == "clip-000":
            raise RuntimeError("model exploded")
        if name == "clip-001":
            return ["not a prediction"]
        return OraclePredictor().predict(audio_path, queries)[1:]


def test_predictor_errors_are_recorded_per_query_not_fatal(bench, tmp_path):
    summary = run_eval(bench.queries, bench.manifest, _Flaky(), tmp_path / "f", progress=False)
    assert summary.n_answered == 9 and summary.n_errors == 7
    preds = {p.id: p for p in read_jsonl(tmp_path / "f" / "predictions.jsonl", PredictionRecord)}
    assert preds["q000-a"].status == "error" and "model exploded" in preds["q000-a"].raw
    assert "not a PredictionRecord" in preds["q001-a"].raw
    assert preds["q002-a"].status == "error" and preds["q002-b"].status == "strict"
    m = score_files(tmp_path / "f" / "predictions.jsonl", bench.queries).overall
    assert m.status_counts == {"error": 7, "strict": 2} and m.n_unanswered == 7


def test_existing_output_needs_resume(bench, tmp_path):
    out = tmp_path / "o"
    run_eval(bench.queries, bench.manifest, OraclePredictor(), out, progress=False)
    with pytest.raises(FileExistsError, match="resume"):
        run_eval(bench.queries, bench.manifest, OraclePredictor(), out, progress=False)
    again = run_eval(bench.queries, bench.manifest, OraclePredictor(), out, resume=True, progress=False)
    assert again.n_skipped == 9 and again.n_answered == 0


def test_unknown_audio_id_is_one_clear_error(bench, tmp_path):
    write_jsonl(tmp_path / "q.jsonl", [QueryRecord("z", "nope", "dog", True, [])])
    assert main([str(tmp_path / "q.jsonl"), "--manifest", str(bench.manifest), "--predictor", "oracle",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 1


CRASHY = textwrap.dedent("""
    import os, signal
    from eval.predictors import OraclePredictor

    class Crashy(OraclePredictor):
        '''Oracle that kills its own process (SIGKILL, no cleanup) on its k-th call, after leaving a
        half-written line in the predictions file, as a crash mid-write would. The crash is set by
        the environment, so the resumed command is the same command (same predictor arguments).'''
        def __init__(self):
            kill = os.environ.get("CRASHY_KILL_ON_CALL")
            self.kill_on_call, self.torn, self.calls = kill and int(kill), os.environ.get("CRASHY_TORN"), 0

        def predict(self, audio_path, queries):
            self.calls += 1
            if self.kill_on_call is not None and self.calls == self.kill_on_call:
                if self.torn:
                    with open(self.torn, "a") as f:
                        f.write('{"id": "q00')
                        f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return super().predict(audio_path, queries)
""")


def _earmark(args, extra_path: Path, **env_vars) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{extra_path}{os.pathsep}{REPO}", **env_vars)
    code = "import sys; from earmark_cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)


def test_killed_run_resumes_with_every_query_answered_exactly_once(bench, tmp_path):
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "crashy_predictor.py").write_text(CRASHY)
    out = tmp_path / "run"
    pred = out / "predictions.jsonl"
    base = ["eval", str(bench.queries), "--manifest", str(bench.manifest), "--predictor",
            "crashy_predictor:Crashy", "--out", str(out), "--no-progress"]
    first = _earmark(base, mod, CRASHY_KILL_ON_CALL="3", CRASHY_TORN=str(pred))
    assert first.returncode == -9, first.stderr  # SIGKILL
    lines = pred.read_text().splitlines()
    assert len(lines) == 7 and lines[-1] == '{"id": "q00'  # two files done (6 queries) + torn line
    assert not (out / "metrics.json").exists()

    again = _earmark(base, mod)
    assert again.returncode == 1 and "--resume" in again.stderr  # an existing file is never silently mixed
    again = _earmark(base + ["--resume"], mod)
    assert again.returncode == 0, again.stderr
    ids = [json.loads(line)["id"] for line in pred.read_text().splitlines()]
    assert sorted(ids) == sorted(q.id for q in bench.query_records)  # every query exactly once
    assert _metrics(out)["miou"] == 100.0


def _crash_after_first_file(bench, out, predictor="random", args=("seed=1",)):
    """A run of ``predictor`` that stopped after answering the first audio file's queries."""
    first = [q for q in bench.query_records if q.audio_id == bench.records[0].id]
    run_eval(first, bench.manifest, load_predictor(predictor, **parse_predictor_args(list(args))), out,
             progress=False, identity={"predictor": predictor, "predictor_args": parse_predictor_args(list(args))})
    return len(first)


@pytest.mark.parametrize("other", [["--predictor", "oracle"],
                                   ["--predictor", "random", "--predictor-arg", "seed=2"],
                                   ["--predictor", "random"]])
def test_resume_with_another_predictor_is_refused(bench, tmp_path, capsys, other):
    out = tmp_path / "run"
    n_first = _crash_after_first_file(bench, out)
    before = (out / "predictions.jsonl").read_text()
    rc = main([str(bench.queries), "--manifest", str(bench.manifest), *other, "--out", str(out), "--no-progress",
               "--resume"])
    err = capsys.readouterr().err
    assert rc == 1 and "another predictor" in err and "predictor=random" in err and "seed" in err
    assert "--predictor-arg" in err and "\n" not in err.strip()
    assert (out / "predictions.jsonl").read_text() == before and len(before.splitlines()) == n_first
    # the same predictor resumes, and answers every query exactly once
    assert main([str(bench.queries), "--manifest", str(bench.manifest), "--predictor", "random", "--predictor-arg",
                 "seed=1", "--out", str(out), "--no-progress", "--resume", "--no-plots"]) == 0
    ids = [p.id for p in read_jsonl(out / "predictions.jsonl", PredictionRecord)]
    assert sorted(ids) == sorted(q.id for q in bench.query_records)
    assert json.loads((out / "predictor.json").read_text()) == {
        "engine": "random", "predictor": "random", "predictor_args": {"seed": 1}}


def test_resume_of_a_run_without_predictor_file_checks_the_engines(bench, tmp_path):
    out = tmp_path / "old"
    _crash_after_first_file(bench, out)
    (out / "predictor.json").unlink()  # as written before the file existed
    with pytest.raises(ValueError, match="engine=random.*engine=oracle"):
        run_eval(bench.queries, bench.manifest, OraclePredictor(), out, resume=True, progress=False)
    run_eval(bench.queries, bench.manifest, RandomPredictor(seed=1), out, resume=True, progress=False)


def test_entry_point_predictor_is_found_and_given_its_args(tmp_path, monkeypatch, bench):
    site = tmp_path / "site"
    (site / "fakepred-0.1.dist-info").mkdir(parents=True)
    (site / "fakepred-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepred\nVersion: 0.1\n")
    (site / "fakepred-0.1.dist-info" / "entry_points.txt").write_text(
        "[earmark.predictors]\nfake = fakepred_mod:make\n")
    (site / "fakepred_mod.py").write_text(textwrap.dedent("""
        from eval.predictors import RandomPredictor
        def make(seed=0, p_yes=0.5):
            return RandomPredictor(seed=seed, p_yes=p_yes)
    """))
    monkeypatch.syspath_prepend(str(site))
    p = load_predictor("fake", **parse_predictor_args(["seed=7", "p_yes=1.0"]))
    assert isinstance(p, RandomPredictor) and p.seed == 7 and p.p_yes == 1.0
    out = tmp_path / "o"
    assert main([str(bench.queries), "--manifest", str(bench.manifest), "--predictor", "fake",
                 "--predictor-arg", "p_yes=1.0", "--out", str(out), "--no-progress", "--no-plots"]) == 0
    assert _metrics(out)["existence"]["positive"] == 100.0
    with pytest.raises(ValueError, match="unknown predictor 'nope'.*oracle.*fake"):
        load_predictor("nope")
    with pytest.raises(ValueError, match="bad arguments"):
        load_predictor("oracle", colour="red")


def test_score_command_recomputes_the_run_report(bench, tmp_path):
    out = tmp_path / "run"
    assert main([str(bench.queries), "--manifest", str(bench.manifest), "--predictor", "random",
                 "--predictor-arg", "seed=1", "--out", str(out), "--no-progress"]) == 0
    again = tmp_path / "again"
    assert main(["score", str(out / "predictions.jsonl"), "--queries", str(bench.queries), "--manifest",
                 str(bench.manifest), "--out", str(again)]) == 0
    a = json.loads((out / "metrics.json").read_text())
    b = json.loads((again / "metrics.json").read_text())
    assert a["overall"] == b["overall"] and a["per_class"] == b["per_class"]
    # and through --predictions
    third = tmp_path / "third"
    assert main([str(bench.queries), "--manifest", str(bench.manifest), "--predictions",
                 str(out / "predictions.jsonl"), "--out", str(third), "--no-progress"]) == 0
    assert json.loads((third / "metrics.json").read_text())["overall"] == a["overall"]
    worst = sorted((out / "worst").glob("*.png"))
    assert 1 <= len(worst) <= 10
    assert all(f"worst/{p.name}" in (out / "report.md").read_text() for p in worst)


def test_score_lists_missing_ids(bench, tmp_path):
    out = tmp_path / "run"
    run_eval(bench.queries, bench.manifest, OraclePredictor(), out, progress=False)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    (tmp_path / "partial.jsonl").write_text("\n".join(lines[:-2]) + "\n")
    assert main(["score", str(tmp_path / "partial.jsonl"), "--queries", str(bench.queries), "--out",
                 str(tmp_path / "s")]) == 1
    assert main(["score", str(tmp_path / "partial.jsonl"), "--queries", str(bench.queries), "--out",
                 str(tmp_path / "s"), "--allow-missing", "--no-plots"]) == 0
    m = _metrics(tmp_path / "s")
    assert m["status_counts"]["missing"] == 2 and m["n_unanswered"] == 2
    report = (tmp_path / "s" / "report.md").read_text()
    assert "Missing ids (2)" in report and "| missing | 2 |" in report


def _run_cli(bench, queries, tmp_path, capsys, name="o"):
    rc = main([str(queries), "--manifest", str(bench.manifest), "--predictor", "oracle", "--out",
               str(tmp_path / name), "--no-progress", "--no-plots"])
    return rc, capsys.readouterr().err


def test_a_window_past_the_end_of_its_audio_is_an_error_naming_file_and_line(bench, tmp_path, capsys):
    qs = [q.to_dict() for q in bench.query_records]
    qs[4]["windows"] = [[3.0, 999.0]]          # the files are 4 s long
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps(d) + "\n" for d in qs))
    rc, err = _run_cli(bench, q, tmp_path, capsys)
    assert rc == 1 and f"{q}:5:" in err and "999" in err and "duration 4.0" in err
    assert not (tmp_path / "o" / "predictions.jsonl").exists()
    assert main(["score", str(q), "--queries", str(q), "--manifest", str(bench.manifest), "--out",
                 str(tmp_path / "s")]) == 1
    assert f"{q}:5:" in capsys.readouterr().err


def test_a_manifest_duration_that_is_not_the_audios_is_an_error(bench, tmp_path, capsys):
    recs = [r.to_dict() for r in bench.records]
    recs[1]["duration"] = 39.0                  # the file is 4 s long
    m = bench.root / "m35.jsonl"                # beside the audio folder
    m.write_text("".join(json.dumps(d) + "\n" for d in recs))
    rc = main([str(bench.queries), "--manifest", str(m), "--predictor", "oracle", "--out", str(tmp_path / "o"),
               "--no-progress", "--no-plots"])
    err = capsys.readouterr().err
    assert rc == 1 and f"{m}:2:" in err and "duration 39.0 s" in err and "4.00 s long" in err


def test_an_empty_queries_file_is_an_error_not_a_table_of_dashes(bench, tmp_path, capsys):
    q = tmp_path / "empty.jsonl"
    q.write_text("\n")
    rc, err = _run_cli(bench, q, tmp_path, capsys)
    assert rc == 1 and str(q) in err and "no queries" in err
    assert not (tmp_path / "o" / "metrics.json").exists()
    assert main(["score", str(q), "--queries", str(q), "--out", str(tmp_path / "s")]) == 1
    assert "no queries" in capsys.readouterr().err
    from eval.scoring import score_predictions

    with pytest.raises(ValueError, match="no queries"):
        score_predictions([], [])


class _Versioned(OraclePredictor):
    """Same name and arguments, another model behind them (e.g. a retrained default checkpoint)."""

    def __init__(self, weights):
        self.weights = weights

    def describe(self):
        return {"weights": self.weights, "thresholds": [0.5, 0.1]}


def test_resume_with_the_same_arguments_but_another_model_is_refused(bench, tmp_path):
    out = tmp_path / "run"
    first = [q for q in bench.query_records if q.audio_id == bench.records[0].id]
    ident = {"predictor": "mine", "predictor_args": {}}
    run_eval(first, bench.manifest, _Versioned("v1"), out, progress=False, identity=ident)
    with pytest.raises(ValueError, match="v1.*v2"):
        run_eval(bench.query_records, bench.manifest, _Versioned("v2"), out, resume=True, progress=False,
                 identity=ident)
    done = run_eval(bench.query_records, bench.manifest, _Versioned("v1"), out, resume=True, progress=False,
                    identity=ident)
    assert done.n_skipped == len(first) and done.n_answered == len(bench.query_records) - len(first)
