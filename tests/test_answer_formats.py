"""data_recipes.answer_formats: every format written, then read back by what reads it (sed_scores_eval
for TSV, the csv and json modules, the module's own label-track and subtitle readers)."""
from __future__ import annotations

import csv
import io
import json

import pytest

from data_recipes.answer_formats import (NON_ENGLISH_NOTE, AnswerRow, AnswerWriter, parse_timestamp, query_notes,
                                         read_audacity, read_srt, read_vtt, srt_time, vtt_time)


def _rows(audio: str) -> list[AnswerRow]:
    return [
        AnswerRow(audio, "dog barking", True, [(1.25, 2.5, 0.8), (7.0, 8.125, 0.4)], {"query": "dog barking", "exists": True}),
        AnswerRow(audio, "a \"loud\"\tdoor, slam", True, [(0.5, 1.0, 0.9)], {"exists": True}),
        AnswerRow(audio, "rain", False, [], {"query": "rain", "exists": False}),
    ]


def _write(fmt: str, recordings: list[str], **kw) -> str:
    buf = io.StringIO()
    w = AnswerWriter(fmt, buf, **kw)
    for audio in recordings:
        w.write(audio, _rows(audio))
    w.close()
    return buf.getvalue()


EXPECTED = [(0.5, 1.0, 'a "loud" door, slam'), (1.25, 2.5, "dog barking"), (7.0, 8.125, "dog barking")]


def test_tsv_reads_back_through_sed_scores_eval(tmp_path):
    from sed_scores_eval.base_modules.io import read_ground_truth_events

    path = tmp_path / "events.tsv"
    path.write_text(_write("tsv", ["clips/a.wav", "b.flac"]))
    assert path.read_text().splitlines()[0] == "filename\tonset\toffset\tevent_label"
    events = read_ground_truth_events(path)
    assert set(events) == {"clips/a", "b"}  # sed_scores_eval's ids: the filename without its extension
    for key in events:
        assert sorted(tuple(e) for e in events[key]) == EXPECTED


def test_tsv_with_no_events_is_a_header_sed_scores_eval_reads(tmp_path):
    from sed_scores_eval.base_modules.io import read_ground_truth_events

    buf = io.StringIO()
    w = AnswerWriter("tsv", buf)
    w.write("a.wav", [AnswerRow("a.wav", "rain", False, [], {})])
    w.close()
    path = tmp_path / "none.tsv"
    path.write_text(buf.getvalue())
    assert read_ground_truth_events(path) == {}


def test_csv_reads_back_with_the_csv_module():
    rows = list(csv.DictReader(io.StringIO(_write("csv", ["a.wav", "b.wav"]))))
    assert len(rows) == 6 and set(rows[0]) == {"filename", "onset", "offset", "event_label", "confidence"}
    got = [(float(r["onset"]), float(r["offset"]), r["event_label"]) for r in rows if r["filename"] == "b.wav"]
    assert got == EXPECTED
    assert [float(r["confidence"]) for r in rows if r["filename"] == "a.wav"] == [0.9, 0.8, 0.4]


@pytest.mark.parametrize("fmt, reader", [("audacity", read_audacity), ("srt", read_srt), ("vtt", read_vtt)])
def test_one_recording_formats_round_trip(fmt, reader):
    text = _write(fmt, ["a.wav"])
    assert reader(text) == EXPECTED  # in time order, labels whitespace-normalised
    with pytest.raises(ValueError, match=f"--format {fmt} describes one recording"):
        _write(fmt, ["a.wav", "b.wav"])


def test_subtitle_and_label_layouts():
    srt = _write("srt", ["a.wav"])
    assert srt.startswith("1\n00:00:00,500 --> 00:00:01,000\na \"loud\" door, slam\n\n2\n00:00:01,250 --> ")
    vtt = _write("vtt", ["a.wav"])
    assert vtt.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:01.000\n")
    assert _write("audacity", ["a.wav"]).splitlines()[0] == "0.500000\t1.000000\ta \"loud\" door, slam"
    buf = io.StringIO()
    w = AnswerWriter("vtt", buf)
    w.write("a.wav", [AnswerRow("a.wav", "<b>kids</b> & dogs --> cats", True, [(1, 2, 0.5)], {})])
    assert "&lt;b&gt;kids&lt;/b&gt; &amp; dogs --&gt; cats" in buf.getvalue()  # no tag, no cue-timing arrow
    assert read_vtt(buf.getvalue()) == [(1.0, 2.0, "<b>kids</b> & dogs --> cats")]


def test_timestamps():
    assert srt_time(3723.4567) == "01:02:03,457" and vtt_time(3723.4567) == "01:02:03.457"
    assert srt_time(59.9996) == "00:01:00,000"  # rounding carries into the minutes
    assert vtt_time(0) == "00:00:00.000" and srt_time(360000.0) == "100:00:00,000"
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="seconds >= 0"):
            srt_time(bad)
    assert parse_timestamp("01:02:03,457") == pytest.approx(3723.457)
    assert parse_timestamp("02:03.457") == pytest.approx(123.457)
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp("1:2:3")


def test_json_and_jsonl_keep_the_no_answers():
    lines = [json.loads(x) for x in _write("jsonl", ["a.wav", "b.wav"]).splitlines()]
    assert len(lines) == 6 and {(d["audio"], d["query"]) for d in lines} >= {("a.wav", "rain"), ("b.wav", "rain")}
    assert [d["exists"] for d in lines if d["query"] == "rain"] == [False, False]
    doc = json.loads(_write("json", ["a.wav"], document=lambda files: {"model": "m", "files": files}))
    assert doc["model"] == "m" and [a.get("query") for a in doc["files"][0]["answers"]] == ["dog barking", None, "rain"]


def test_unknown_format_and_readers_reject_garbage():
    with pytest.raises(ValueError, match="format 'text'"):
        AnswerWriter("text", io.StringIO())
    with pytest.raises(ValueError, match="no WEBVTT header"):
        read_vtt("1\n00:00:01,000 --> 00:00:02,000\nx\n")
    with pytest.raises(ValueError, match="line 2"):
        read_audacity("1.0\t2.0\tdog\njunk\n")


def test_query_notes_flag_non_english_queries():
    assert query_notes("狗叫") == [NON_ENGLISH_NOTE] and query_notes("собака лает") == [NON_ENGLISH_NOTE]
    assert query_notes("dog barking") == [] and query_notes("a café door") == [] and query_notes("123") == []
