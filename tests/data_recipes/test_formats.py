import json
from pathlib import Path

import pytest

from data_recipes.formats import (Event, FormatError, JsonlAppender, ManifestRecord, PredictionRecord, QueryRecord,
                                  check_file, detect_kind, iter_jsonl, load_hf_dataset, merge_events, read_jsonl,
                                  resolve_audio, write_jsonl)

MANIFEST = {"id": "spot-000123", "audio": "audio/spot-000123.flac", "duration": 52.91,
            "events": [{"query": "dog barking", "start": 12.4, "end": 13.9},
                       {"query": "dog barking", "start": 20.0, "end": 21.5},
                       {"query": "car horn", "start": 13.0, "end": 14.0}],
            "caption": "a dog barks twice on a busy street", "split": "test", "source": "synth-longform",
            "meta": {"seed": 3}}
QUERY = {"id": "q-1", "audio_id": "spot-000123", "query": "dog barking", "negative": False,
         "windows": [[12.4, 13.9], [20.0, 21.5]]}
NEG_QUERY = {"id": "q-2", "audio_id": "spot-000123", "query": "a cat meows", "negative": True, "windows": []}
PRED = {"id": "q-1", "audio_id": "spot-000123", "query": "dog barking", "negative": False, "exists": True,
        "windows": [[12.3, 13.8, 0.91]], "raw": "Yes. From 12.30 seconds to 13.80 seconds.", "engine": "hf",
        "ms": 41.2, "status": "strict", "score": 0.97}


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("cls,d", [(ManifestRecord, MANIFEST), (QueryRecord, QUERY), (QueryRecord, NEG_QUERY),
                                   (PredictionRecord, PRED)])
def test_dict_and_file_round_trip(tmp_path, cls, d):
    rec = cls.from_dict(d)
    assert rec.to_dict() == d
    assert cls.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    p = tmp_path / "x.jsonl"
    assert write_jsonl(p, [rec, cls.from_dict({**d, "id": d["id"] + "b"})]) == 2
    back = read_jsonl(p, cls)
    assert back[0] == rec and back[1].id == d["id"] + "b"
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves nothing behind
    kind, good, errors = check_file(p)
    assert (good, errors) == (2, []) and RECORD_OF[kind] is cls


RECORD_OF = {"manifest": ManifestRecord, "queries": QueryRecord, "predictions": PredictionRecord}


def test_times_written_with_two_decimals_and_minimal_manifest():
    r = ManifestRecord("a", "a.wav", 10.0 / 3, [Event("x", 1 / 3, 2 / 3)])
    assert r.to_dict() == {"id": "a", "audio": "a.wav", "duration": 3.33,
                           "events": [{"query": "x", "start": 0.33, "end": 0.67}]}
    assert ManifestRecord.from_dict({"id": "a", "audio": "a.wav", "duration": 3}).events == []


def test_write_append_and_windows(tmp_path):
    p = tmp_path / "m.jsonl"
    write_jsonl(p, [ManifestRecord.from_dict(MANIFEST)])
    write_jsonl(p, [{**MANIFEST, "id": "other"}], append=True)
    recs = read_jsonl(p, ManifestRecord)
    assert [r.id for r in recs] == ["spot-000123", "other"]
    assert recs[0].windows("dog barking") == [(12.4, 13.9), (20.0, 21.5)] and recs[0].windows("nope") == []


# ------------------------------------------------------------------ the validator
def _bad_manifest(**change):
    d = json.loads(json.dumps(MANIFEST))
    d.update(change)
    return json.dumps(d)


BAD_LINES = [
    ("manifest", '{"id": "x", "audio": "a.wav", "duration": 3', "not valid JSON"),
    ("manifest", '["not", "an", "object"]', "must be a JSON object"),
    ("manifest", json.dumps({"audio": "a.wav", "duration": 3}), "missing field 'id'"),
    ("manifest", _bad_manifest(id=""), "empty id"),
    ("manifest", _bad_manifest(audio=""), "empty audio path"),
    ("manifest", _bad_manifest(duration=0), "must be positive"),
    ("manifest", _bad_manifest(duration=-1.5), "must be positive"),
    ("manifest", _bad_manifest(duration=True), "must be int or float"),
    ("manifest", _bad_manifest(duration="52.9"), "must be int or float"),
    ("manifest", _bad_manifest(duration=float("nan")), "not a finite number"),
    ("manifest", _bad_manifest(events={"query": "x"}), "'events' must be a list"),
    ("manifest", _bad_manifest(events=[{"query": "x", "start": 5, "end": 4}]), "is not after start"),
    ("manifest", _bad_manifest(events=[{"query": "x", "start": -1, "end": 4}]), "is negative"),
    ("manifest", _bad_manifest(events=[{"query": "x", "start": 50, "end": 60}]), "past the audio's duration"),
    ("manifest", _bad_manifest(events=[{"query": " ", "start": 1, "end": 2}]), "empty query"),
    ("manifest", _bad_manifest(events=[{"query": "x", "start": 1, "end": 2, "loud": True}]), "unknown field"),
    ("manifest", _bad_manifest(events=[{"query": "x", "start": 1, "end": 3}, {"query": "x", "start": 2, "end": 4}]),
     "overlap"),
    ("manifest", _bad_manifest(caption=5), "'caption' must be a string"),
    ("manifest", _bad_manifest(meta=[1]), "'meta' must be an object"),
    ("manifest", _bad_manifest(colour="red"), "unknown field"),
    ("queries", json.dumps({**NEG_QUERY, "windows": [[1, 2]]}), "a negative query has no windows"),
    ("queries", json.dumps({**QUERY, "windows": []}), "needs at least one window"),
    ("queries", json.dumps({**QUERY, "windows": [[1, 2, 3]]}), "must be [start, end]"),
    ("queries", json.dumps({**QUERY, "negative": "no"}), "must be bool"),
    ("predictions", json.dumps({**PRED, "windows": [[1, 2]]}), "must be [start, end, score]"),
    ("predictions", json.dumps({**PRED, "exists": None}), "must be bool"),
    ("predictions", json.dumps({**PRED, "score": float("inf")}).replace("Infinity", "1e999"), "not a finite"),
    ("predictions", json.dumps({**PRED, "ms": "fast"}), "'ms'"),
    ("predictions", json.dumps({**PRED, "score": "high"}), "'score'"),
]


@pytest.mark.parametrize("kind,line,reason", BAD_LINES)
def test_validator_names_file_line_and_reason(tmp_path, kind, line, reason):
    good = {"manifest": MANIFEST, "queries": QUERY, "predictions": PRED}[kind]
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({**good, "id": "good-1"}) + "\n\n" + line + "\n")
    k, n_good, errors = check_file(p, kind)
    assert (k, n_good, len(errors)) == (kind, 1, 1)
    msg = str(errors[0])
    assert msg.startswith(f"{p}:3: ") and reason in msg and "\n" not in msg
    with pytest.raises(FormatError, match=f"^{p}:3: ") as exc:
        list(iter_jsonl(p, RECORD_OF[kind]))
    assert exc.value.line == 3 and str(exc.value.path) == str(p)
    errs = []
    assert len(list(iter_jsonl(p, RECORD_OF[kind], skip_bad=True, errors=errs))) == 1 and len(errs) == 1


def test_duplicate_ids_and_missing_audio(tmp_path):
    p = tmp_path / "dup.jsonl"
    p.write_text(json.dumps(MANIFEST) + "\n" + json.dumps(MANIFEST) + "\n")
    _, good, errors = check_file(p)
    assert good == 1 and str(errors[0]).startswith(f"{p}:2: duplicate id")
    with pytest.raises(FormatError, match="duplicate id"):
        read_jsonl(p, ManifestRecord)
    q = tmp_path / "one.jsonl"
    q.write_text(json.dumps(MANIFEST) + "\n")
    (err,) = check_file(q, check_audio=True)[2]
    assert "spot-000123.flac" in str(err) and str(err).startswith(f"{q}:1:")
    (tmp_path / "audio").mkdir()
    _write_silence(tmp_path / "audio" / "spot-000123.flac", MANIFEST["duration"])
    assert check_file(q, check_audio=True)[2] == []
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        check_file(tmp_path / "nope.jsonl")


def test_check_stops_after_max_errors(tmp_path):
    p = tmp_path / "many.jsonl"
    p.write_text("{broken\n" * 30)
    assert len(check_file(p, "manifest", max_errors=5)[2]) == 5


def test_detect_kind():
    assert detect_kind(MANIFEST) == "manifest" and detect_kind(QUERY) == "queries" and detect_kind(PRED) == "predictions"
    with pytest.raises(FormatError):
        detect_kind({"foo": 1})


# ------------------------------------------------------------------ helpers
def test_merge_events():
    evs = [Event("a", 3, 4), Event("a", 0, 1), Event("a", 0.5, 2), Event("b", 0.5, 1), Event("a", 2.05, 2.5)]
    assert merge_events(evs) == [Event("a", 0, 2), Event("b", 0.5, 1), Event("a", 2.05, 2.5), Event("a", 3, 4)]
    assert merge_events(evs, gap=0.1) == [Event("a", 0, 2.5), Event("b", 0.5, 1), Event("a", 3, 4)]
    assert merge_events([]) == []
    orig = Event("a", 0, 1)
    merge_events([orig, Event("a", 0.5, 3)])
    assert orig.end == 1  # inputs are not modified


def test_resolve_audio(tmp_path):
    rec = ManifestRecord("a", "audio/a.flac", 1.0)
    assert resolve_audio(tmp_path / "m.jsonl", rec) == tmp_path.resolve() / "audio" / "a.flac"
    rec.audio = "/abs/a.flac"
    assert resolve_audio(tmp_path / "m.jsonl", rec) == Path("/abs/a.flac")


# ------------------------------------------------------------------ resumable appends
def test_appender_resumes_after_a_torn_last_line(tmp_path):
    p = tmp_path / "preds.jsonl"
    with JsonlAppender(p, PredictionRecord) as app:
        for i in range(3):
            app.write(PredictionRecord.from_dict({**PRED, "id": f"q-{i}"}))
    whole = p.read_text()
    p.write_text(whole + json.dumps({**PRED, "id": "q-3"})[:40])  # crash in the middle of a line
    with JsonlAppender(p, PredictionRecord) as app:
        assert app.done == {"q-0", "q-1", "q-2"}
        assert p.read_text() == whole  # the torn line is gone
        app.write(PredictionRecord.from_dict({**PRED, "id": "q-3"}))
        assert "q-3" in app.done
    assert [r.id for r in read_jsonl(p, PredictionRecord)] == ["q-0", "q-1", "q-2", "q-3"]


def test_appender_keeps_a_complete_last_line_without_newline(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text(json.dumps(QUERY) + "\n" + json.dumps({**QUERY, "id": "q-9"}))  # written by another tool
    with JsonlAppender(p, QueryRecord) as app:
        assert app.done == {"q-1", "q-9"}
        app.write(QueryRecord.from_dict({**QUERY, "id": "q-10"}))
    assert [r.id for r in read_jsonl(p, QueryRecord)] == ["q-1", "q-9", "q-10"]


def test_appender_refuses_a_corrupt_middle_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps(MANIFEST) + "\n{oops\n" + json.dumps({**MANIFEST, "id": "b"}) + "\n")
    with pytest.raises(FormatError, match=f"^{p}:2: "):
        JsonlAppender(p, ManifestRecord)
    p.write_text(json.dumps({**MANIFEST, "duration": -1}) + "\n")
    with pytest.raises(FormatError, match=f"^{p}:1: .*must be positive"):
        JsonlAppender(p, ManifestRecord)


def test_appender_new_file_in_new_folder(tmp_path):
    with JsonlAppender(tmp_path / "a" / "b.jsonl") as app:
        assert app.done == set()
        app.write({"id": "x", "v": 1})
    assert json.loads((tmp_path / "a" / "b.jsonl").read_text()) == {"id": "x", "v": 1}


# ------------------------------------------------------------------ datasets
def test_load_hf_dataset(tmp_path):
    p = tmp_path / "m.jsonl"
    write_jsonl(p, [ManifestRecord.from_dict(MANIFEST), ManifestRecord.from_dict({**MANIFEST, "id": "b"})])
    ds = load_hf_dataset(p)
    assert ds.num_rows == 2 and ds[1]["id"] == "b" and ds[0]["events"][0]["query"] == "dog barking"
    p.write_text(p.read_text() + "{bad\n")
    with pytest.raises(FormatError, match=":3:"):
        load_hf_dataset(p)


def _write_silence(path, seconds, sr=8000):
    import numpy as np
    import soundfile as sf

    sf.write(str(path), np.zeros(int(round(seconds * sr)), np.float32), sr)


def test_check_audio_compares_the_manifest_duration_with_the_audio(tmp_path):
    (tmp_path / "audio").mkdir()
    _write_silence(tmp_path / "audio" / "a.flac", 40.0)
    _write_silence(tmp_path / "audio" / "b.flac", 10.0)
    (tmp_path / "audio" / "c.flac").write_bytes(b"not audio at all" * 10)
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(d) + "\n" for d in [
        {"id": "a", "audio": "audio/a.flac", "duration": 75.0},   # 35 s off
        {"id": "b", "audio": "audio/b.flac", "duration": 10.04},  # rounding: fine
        {"id": "c", "audio": "audio/c.flac", "duration": 5.0}]))
    _, good, errors = check_file(m, check_audio=True)
    assert good == 1 and [str(e).split(": ")[0] for e in errors] == [f"{m}:1", f"{m}:3"]
    assert "duration 75.0 s" in str(errors[0]) and "40.00 s long" in str(errors[0])
    assert "c.flac" in str(errors[1])
    assert check_file(m)[2] == []   # without --audio the audio is not read


def test_queries_checked_against_a_manifest(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "audio": "a.flac", "duration": 40.0}) + "\n")
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps(d) + "\n" for d in [
        {"id": "1", "audio_id": "a", "query": "dog", "negative": False, "windows": [[3, 10]]},
        {"id": "2", "audio_id": "a", "query": "dog", "negative": False, "windows": [[3, 999]]},
        {"id": "3", "audio_id": "zz", "query": "dog", "negative": True}]))
    _, good, errors = check_file(q, manifest=m)
    assert good == 1 and len(errors) == 2
    assert str(errors[0]).startswith(f"{q}:2: ") and "999" in str(errors[0]) and "duration 40.0" in str(errors[0])
    assert str(errors[1]).startswith(f"{q}:3: ") and "'zz'" in str(errors[1])
    assert check_file(q)[2] == []   # alone, a queries file cannot know durations
    from data_recipes.cli import main as data_main

    assert data_main(["check", str(q), "--manifest", str(m)]) == 1
