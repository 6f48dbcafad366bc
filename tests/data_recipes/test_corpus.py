"""The corpus recipe on a fake unpacked Debian tree built here (real file formats, real rule paths)."""
from __future__ import annotations

import collections
import os
import shutil
import zipfile

import numpy as np
import pytest
import soundfile as sf

from data_recipes import cli
from data_recipes.clips import clean_event, concat_hits, crop_pieces, first_segment, rms_relabel, silence_trim
from data_recipes.corpus import CorpusConfig, Source, _noise_bed, assign_splits, prepare_corpus, scan_sounds
from data_recipes.corpus_containers import extract_containers
from data_recipes.corpus_labels import EVENT_RULES, label_for, query_for
from data_recipes.formats import ManifestRecord, check_file, read_jsonl

SR = 16000


def _burst(dur: float, freq: float, lead: float = 0.3, tail: float = 0.3, sr: int = 22050) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * freq * t) * np.minimum(1, t / 0.01) * np.minimum(1, (dur - t) / 0.01)
    return np.concatenate([np.zeros(int(lead * sr)), y, np.zeros(int(tail * sr))]).astype(np.float32)


def _write(path, y, sr=22050, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, **kw)


def build_fake_sounds(x):
    """x/<package>/... with files the reviewed rules label, plus bad files."""
    lug = x / "lugaru-data/usr/share/games/lugaru/Data/Sounds"
    for i, name in enumerate(["Bark.ogg", "Bark2.ogg", "Bark3.ogg"]):
        _write(lug / name, _burst(0.6 + 0.2 * i, 500 + 50 * i), format="OGG", subtype="VORBIS")
    # UFO:AI keeps its sounds in a zip .pk3: glass breaking inside the container
    pk3 = x / "ufoai-sound/usr/share/games/ufoai/base/0snd.pk3"
    pk3.parent.mkdir(parents=True, exist_ok=True)
    tmp = x / "_tmp.wav"
    with zipfile.ZipFile(pk3, "w") as z:
        for i in range(4):
            sf.write(tmp, _burst(1.0 + 0.1 * i, 2000 + 100 * i) * 0.8, 22050)
            z.write(tmp, f"sound/misc/breakglass{i + 1}.ogg")  # a WAV behind an .ogg name decodes too
    tmp.unlink()
    # 12 single footsteps (minetest) -> walking clips
    mt = x / "minetest-data/usr/share/games/minetest/games/minetest_game/mods/default/sounds"
    for i in range(12):
        _write(mt / f"default_grass_footstep.{i}.ogg", _burst(0.15, 150 + 10 * i, 0.05, 0.05), format="OGG",
               subtype="VORBIS")
    # an over-long thunder (20 s of rumble) -> cropped pieces
    sc = x / "scorched3d-data/usr/share/games/scorched3d/data/wav"
    rng = np.random.default_rng(0)
    _write(sc / "misc/thunder.wav", (rng.standard_normal(20 * 22050) * 0.3).astype(np.float32))
    for i in range(2):
        _write(sc / f"misc/thunder{i + 1}.wav", (rng.standard_normal(3 * 22050) * 0.3).astype(np.float32))
    # bad files named like growls (rules match them): not audio, empty, silent, NaN
    (lug / "Growl.ogg").write_text("this is not audio")
    (lug / "Growl2.ogg").write_bytes(b"")
    _write(lug / "Snarl.ogg", np.zeros(22050, np.float32), format="WAV")
    nan = _burst(0.5, 440)
    nan[100] = np.nan
    _write(lug / "Snarl2.ogg", nan, format="WAV", subtype="FLOAT")
    # beds (stereo 44.1 kHz), one contains birds
    bt = x / "btanks-data/usr/share/games/btanks/ambient"
    for name in ["city.ogg", "forest.ogg", "country.ogg", "swamp.ogg", "horror.ogg"]:
        _write(bt / name, (rng.standard_normal((15 * 44100, 2)) * 0.05).astype(np.float32), sr=44100,
               format="OGG", subtype="VORBIS")
    # many narration snippets: capped
    tp = x / "tuxpaint-stamps-default/usr/share/tuxpaint/stamps/animals/birds"
    for i in range(8):
        _write(tp / f"bird{i}_desc_fr.ogg", _burst(0.5, 300 + 20 * i), format="OGG", subtype="VORBIS")
    # an unlabelled file is ignored
    _write(x / "lugaru-data/usr/share/games/lugaru/Data/Sounds/Unrelated.ogg", _burst(0.5, 300), format="OGG",
           subtype="VORBIS")
    extract_containers(x / "ufoai-sound")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("debian")
    build_fake_sounds(root / "x")
    dest = root / "corpus"
    cfg = CorpusConfig(cap_per_class=5, synth_sources=False, workers=2)
    res = prepare_corpus(root, dest, cfg)
    return root, dest, res


def test_rules_and_queries():
    assert label_for("btanks-data", "usr/share/games/btanks/ambient/forest.ogg") == \
        "background: forest ambience with birds"
    assert label_for("ufoai-sound", "usr/share/games/ufoai/base/0snd.pk3!/sound/misc/breakglass3.ogg") == \
        "glass breaking"
    assert label_for("lugaru-data", "x/Unrelated.ogg") is None
    for _, _, lab in EVENT_RULES:
        q = query_for(lab)
        assert "(" not in q and ";" not in q and q == q.strip() and q, lab


def test_scan_finds_container_members_and_labels(built):
    root, _, _ = built
    srcs = scan_sounds(root / "x")
    by = collections.Counter(s.label for s in srcs)
    assert by["glass breaking"] == 4 and by["dog barking"] == 3 and by["dog growling"] == 4
    assert all("!/" in s.path for s in srcs if s.label == "glass breaking")
    assert not any("Unrelated" in s.path for s in srcs)


def test_manifests_valid_and_audio_is_16k_mono_flac(built):
    _, dest, res = built
    for name in ("clips.jsonl", "beds.jsonl"):
        kind, good, errors = check_file(dest / name, check_audio=True)
        assert not errors and good > 0
    for rec in read_jsonl(dest / "clips.jsonl", ManifestRecord) + read_jsonl(dest / "beds.jsonl", ManifestRecord):
        info = sf.info(str(dest / rec.audio))
        assert info.samplerate == SR and info.channels == 1 and info.format == "FLAC"
        assert abs(info.frames / SR - rec.duration) < 0.011
        assert rec.meta["recordings"] and rec.source


def test_no_recording_in_two_splits_and_stratified(built):
    _, dest, _ = built
    recs = read_jsonl(dest / "clips.jsonl", ManifestRecord) + read_jsonl(dest / "beds.jsonl", ManifestRecord)
    splits_of = collections.defaultdict(set)
    for r in recs:
        for rid in r.meta["recordings"]:
            splits_of[rid].add(r.split)
    assert all(len(s) == 1 for s in splits_of.values())
    by_class = collections.defaultdict(set)
    for r in read_jsonl(dest / "clips.jsonl", ManifestRecord):
        by_class[r.events[0].query].add(r.split)
    # 3 good dog recordings -> one per split; 4 glass -> every split; 3 thunder -> every split
    assert by_class["dog barking"] == {"train", "val", "test"}
    assert by_class["glass breaking"] == {"train", "val", "test"}
    assert by_class["thunder"] == {"train", "val", "test"}
    beds = read_jsonl(dest / "beds.jsonl", ManifestRecord)
    assert {b.split for b in beds} == {"train", "val", "test"}


def test_clean_clips_events_and_crops(built):
    _, dest, _ = built
    clips = read_jsonl(dest / "clips.jsonl", ManifestRecord)
    for c in clips:
        (e,) = c.events
        assert "(" not in e.query
        assert 0 <= e.start < e.end <= c.duration + 0.011
        # the clip is the sound, not its silence: the event covers nearly all of it
        assert (e.end - e.start) >= 0.9 * c.duration - 0.03, (c.id, e, c.duration)
        assert c.duration <= 7.5 + 1e-6
    thunder = [c for c in clips if c.events[0].query == "thunder"]
    long_one = sorted((c for c in thunder if c.meta["path"].endswith("/thunder.wav")), key=lambda c: c.id)
    # 20 s of rumble -> 7.5 + 7.5 + 5 s (a remainder over half a piece is kept), at most 3 crops
    assert [round(c.duration, 1) for c in long_one] == [7.5, 7.5, 5.0]
    dogs = [c for c in clips if c.events[0].query == "dog barking"]
    for d in dogs:
        # the 0.3 s of leading silence is trimmed off
        assert d.duration < 1.2


def test_hits_concatenated_into_walking(built):
    _, dest, _ = built
    steps = [c for c in read_jsonl(dest / "clips.jsonl", ManifestRecord) if c.events[0].query == "footsteps"]
    assert steps
    for c in steps:
        assert 4 <= c.meta["concatenated"] <= 10 and c.duration > 4 * 0.1
    # hits of one split only
    splits = collections.defaultdict(set)
    for c in steps:
        for r in c.meta["recordings"]:
            splits[r].add(c.split)
    assert all(len(s) == 1 for s in splits.values())


def test_bad_files_skipped_with_named_reasons(built):
    _, dest, res = built
    text = (dest / "skipped.tsv").read_text()
    for name in ("Growl.ogg", "Growl2.ogg", "Snarl.ogg", "Snarl2.ogg"):
        assert name in text, name
    assert len(res.skipped) == 4
    catalog = (dest / "catalog.tsv").read_text().splitlines()
    assert catalog[0].split("\t") == ["label", "package", "path", "recording", "split", "outcome", "license"]
    rows = [r.split("\t") for r in catalog[1:]]
    assert sum(r[5].startswith("skipped") for r in rows) == 4
    assert sum(r[5].startswith("capped") for r in rows) == 3  # 8 narrations, cap 5
    assert len(rows) == 3 + 4 + 4 + 10 + 3 + 5 + 8  # footstep.10/.11 match no rule (one digit)
    # no debian/copyright in the fake tree: the licence column points at where it would be
    assert all(r[6].startswith("see /usr/share/doc/") for r in rows)
    assert "NaN" in text and "empty" in text and "silent" in text


def test_caps_and_bed_contents(built):
    _, dest, res = built
    narr = [c for c in read_jsonl(dest / "clips.jsonl", ManifestRecord) if c.events[0].query == "a person speaking"]
    assert len({c.meta["recordings"][0] for c in narr}) == 5  # 8 capped at 5
    forest = [b for b in read_jsonl(dest / "beds.jsonl", ManifestRecord) if b.caption == "forest ambience with birds"]
    assert forest and "bird chirping" in forest[0].meta["contains"]
    assert res.counts["dog barking"] == {"train": 1, "val": 1, "test": 1}
    assert (dest / "class_counts.png").read_bytes()[:4] == b"\x89PNG"


def test_completed_marker_makes_rerun_a_noop(built):
    root, dest, res = built
    before = (dest / "clips.jsonl").stat().st_mtime_ns
    again = prepare_corpus(root, dest, CorpusConfig(synth_sources=False))
    assert (dest / "clips.jsonl").stat().st_mtime_ns == before and again.clips == res.clips


def test_cli_corpus(tmp_path, built, capsys):
    root, _, _ = built
    dest = tmp_path / "c"
    assert cli.main(["corpus", str(dest), "--sounds", str(root), "--no-synth", "--workers", "1",
                     "--cap-per-class", "5"]) == 0
    out = capsys.readouterr().out
    assert "dog barking" in out and "4 source file(s) skipped" in out
    assert cli.main(["corpus", str(tmp_path / "d"), "--sounds", str(tmp_path / "missing"),
                     "--allow-missing-tools"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]
    (tmp_path / "empty").mkdir()
    assert cli.main(["corpus", str(tmp_path / "d"), "--sounds", str(tmp_path / "empty"),
                     "--allow-missing-tools"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty" in err[0] and "none of the corpus packages" in err[0]


def test_license_lookup_reads_dep5(tmp_path):
    from data_recipes.corpus_licenses import license_for

    doc = tmp_path / "lugaru-data/usr/share/doc/lugaru-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                                   "Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
                                   "Files: Data/Sounds/*\nCopyright: else\nLicense: CC-BY-SA-3.0\n text\n")
    assert license_for(tmp_path, "lugaru-data", "usr/share/games/lugaru/Data/Sounds/Bark.ogg") == "CC-BY-SA-3.0"
    assert license_for(tmp_path, "lugaru-data", "usr/share/games/lugaru/Data/Textures/x.png") == "GPL-2+"
    assert license_for(tmp_path, "flite", "synth:flite awb #0").startswith("flite")


def test_split_rules_small_classes():
    cfg = CorpusConfig()
    srcs = [Source("harp", "p", f"h{i}", recording=f"h{i}") for i in range(1)]
    srcs += [Source("owl hooting", "p", f"o{i}", recording=f"o{i}") for i in range(2)]
    srcs += [Source("drums", "p", f"d{i}", recording=f"d{i}") for i in range(30)]
    split_of, kept = assign_splits(srcs, cfg)
    assert split_of["h0"] == "train"
    assert sorted(split_of[f"o{i}"] for i in range(2)) == ["test", "train"]
    c = collections.Counter(split_of[f"d{i}"] for i in range(30))
    assert c == {"train": 24, "val": 3, "test": 3}
    with pytest.raises(ValueError, match="val_frac"):
        CorpusConfig(val_frac=0.7)


# ----------------------------------------------------------------------------- clips.py units
def test_energy_clipping_keeps_first_segment_and_trims():
    sr = SR
    y = np.concatenate([np.zeros(sr // 2), _burst(0.8, 440, 0, 0, sr), np.zeros(sr), _burst(0.5, 660, 0, 0, sr)])
    a, b = first_segment(y, sr)
    assert abs(a / sr - 0.5) <= 0.06 and abs(b / sr - 1.3) <= 0.06
    ta, tb = silence_trim(y[a:b], sr)
    assert abs((a + ta) / sr - 0.5) <= 0.011 and abs((a + tb) / sr - 1.3) <= 0.011
    pieces = clean_event(y, sr)
    assert len(pieces) == 1 and abs(pieces[0][0] / sr - 0.5) <= 0.011


def test_relabel_crop_concat():
    sr = SR
    y = np.concatenate([_burst(0.3, 440, 0, 0, sr), np.zeros(int(0.1 * sr)), _burst(0.3, 440, 0, 0, sr),
                        np.zeros(int(0.5 * sr)), _burst(0.3, 440, 0, 0, sr)])
    runs = rms_relabel(y, sr)
    assert len(runs) == 2  # the 0.1 s gap is filled (< 200 ms), the 0.5 s one is not
    assert crop_pieces(0, 20 * sr, sr, 7.5, 3) == [(0, 120000), (120000, 240000), (240000, 320000)]
    assert crop_pieces(0, 8 * sr, sr, 7.5, 3) == [(0, 120000)]  # 0.5 s remainder dropped
    z = concat_hits([np.ones(100, np.float32)] * 3, [0.01, 0.02], sr)
    assert len(z) == 300 + 160 + 320
    with pytest.raises(ValueError, match="gaps"):
        concat_hits([np.ones(10)] * 3, [0.1], sr)


def test_noise_beds_deterministic():
    a = _noise_bed("steady pink noise", 5, SR, dur=2.0)
    b = _noise_bed("steady pink noise", 5, SR, dur=2.0)
    c = _noise_bed("steady pink noise", 6, SR, dur=2.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and np.isfinite(a).all()


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
def test_tts_source_renders(tmp_path):
    from data_recipes.corpus import _render

    src = Source("a man speaking", "flite", "synth:flite awb #0", recording="tts-sentence-0", kind="tts",
                 params={"engine": "flite", "voice": "awb", "text": "The cat sat on the mat."})
    y = _render(src, SR, 0)
    assert 0.5 < len(y) / SR < 5 and np.abs(y).max() > 0.01
    assert os.environ.get("PYTEST_CURRENT_TEST")


def test_cli_corpus_says_which_generator_is_missing(tmp_path, monkeypatch, capsys):
    """Without fluidsynth the GM classes would vanish from the corpus: an error, not a silent skip."""
    import shutil

    real = shutil.which
    fake = {"fluidsynth": None, "flite": "/usr/bin/flite", "espeak-ng": "/usr/bin/espeak-ng"}
    monkeypatch.setattr(shutil, "which", lambda t, *a, **k: fake[t] if t in fake else real(t, *a, **k))
    (tmp_path / "x").mkdir()
    assert cli.main(["corpus", str(tmp_path / "d"), "--sounds", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "fluidsynth not installed" in err and "apt-get install fluidsynth" in err and "--no-synth" in err

