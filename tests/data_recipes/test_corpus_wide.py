"""The wide corpus recipe: sources, label decisions, path veto, and a tiny end-to-end run with a fake tagger."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_recipes.corpus_labels import PACKAGES
from data_recipes.corpus_wide import (ALL_PACKAGES, WideConfig, decide, load_wordings, path_opinion, path_veto,
                                      prepare_wide_corpus)

# The list (#23): the packages the narrow corpus uses plus these, and only these. Other
# Debian sound packages are kept for independent evaluation.
ALLOWED_EXTRA = {
    "asterisk-moh-opsound-wav", "blinken", "boswars-data", "colobot-common-sounds", "crrcsim-data",
    "deepin-sound-theme", "extremetuxracer-data", "fillets-ng-data", "freedroidrpg-data", "freepats",
    "frozen-bubble-data", "gamine-data", "granatier", "hedgewars-data", "hydrogen-drumkits-effects", "kapman",
    "kbounce", "klettres-data", "knavalbattle", "ktuberling-data", "lomiri-sounds", "naev-data", "openclonk-data",
    "openssn-data", "pingus-data", "puredata-doc", "ri-li-data", "sound-icons", "supercollider-common",
    "supertux-data", "tuxtype-data", "warmux-data", "warzone2100-data", "xmoto-data", "yaru-theme-sound",
}
YAMNET_MAP = Path(__file__).resolve().parents[2] / "contrastive" / "yamnet" / "yamnet_class_map.csv"


def test_sources_are_within_the_allowed_list():
    assert set(ALL_PACKAGES) <= set(PACKAGES) | ALLOWED_EXTRA
    assert len(set(ALL_PACKAGES)) == len(ALL_PACKAGES)


def test_wordings_cover_the_tagger_classes_with_plain_phrases():
    names = [r[2] for r in list(csv.reader(YAMNET_MAP.open()))[1:]]
    words = load_wordings()
    assert set(words) == set(names)
    labelable = {c: ws for c, (g, ws) in words.items() if g != "generic"}
    assert len(labelable) > 350
    for c, ws in labelable.items():
        assert len(ws) >= 2, c
        assert all(w == w.strip() and w[0].islower() for w in ws), (c, ws)
    for generic in ("Animal", "Sound effect", "Inside, small room", "Jazz", "Silence"):
        assert words[generic][0] == "generic"


@pytest.mark.parametrize("mean,steady,label", [
    ({"Bark": 0.8, "Animal": 0.9}, {"Bark": 1.0}, "Bark"),              # parents never win
    ({"Bark": 0.2, "Meow": 0.25}, {"Meow": 1.0}, None),                   # not confident
    ({"Bark": 0.6, "Meow": 0.5}, {"Bark": 0.4, "Meow": 0.6}, None),       # top label not steady
    ({"Sound effect": 0.9, "Silence": 0.8}, {}, None),                    # nothing labelable
])
def test_decide(mean, steady, label):
    got, why = decide(mean, steady, WideConfig(min_confidence=0.3, min_steady=0.6))
    assert got == label, why


def test_path_veto():
    assert {"Bark", "Dog"} <= path_opinion("usr/share/x/Sounds/dog_bark2.ogg")
    assert path_veto("usr/share/x/dog.ogg", "Meow", ["Meow", "Cat"])       # the path names a dog
    assert not path_veto("usr/share/x/dog.ogg", "Bark", ["Bark"])           # 'a dog barks'
    assert not path_veto("usr/share/x/dog.ogg", "Howl", ["Howl", "Dog"])    # the tagger also heard a dog
    assert not path_veto("usr/share/x/laser12.ogg", "Beep, bleep", ["Beep, bleep"])  # no opinion
    assert not path_opinion("usr/share/games/foo/sounds/sfx_01.wav")
    assert not path_veto("x/voices/camera.completed.wav", "Speech", ["Speech"])    # what is said, not heard
    assert not path_veto("x/tunes/batterie.ogg", "Music", ["Music"])
    assert path_veto("x/sfx/explosion3.wav", "Ding", ["Ding", "Bell", "Chime"])


class FakeTagger:
    """Low tones sound like a dog to it, high tones like a cat, noise like nothing in particular."""

    sample_rate = 16000
    class_names = ["Bark", "Meow", "Animal", "Sound effect", "Beep, bleep", "Silence", "Noise", "Music"]

    def __call__(self, wave):
        n = max(1, len(wave) // 3840)
        spec = np.abs(np.fft.rfft(wave))
        f = np.argmax(spec) * 16000 / len(wave)
        row = ([0.9, 0.0, 0.95, 0.5] if f < 600 else [0.0, 0.8, 0.95, 0.5] if f < 4000 else [0.1, 0.1, 0.2, 0.9])
        row += [0.2, 0.3, 0.3, 0.2]
        return np.tile(np.array(row, np.float32), (n, 1))


def _tone(path: Path, freq: float, seconds: float = 1.5):
    t = np.arange(int(16000 * seconds)) / 16000
    y = 0.5 * np.sin(2 * np.pi * freq * t) if freq else 0.3 * np.random.default_rng(1).standard_normal(len(t))
    y = np.concatenate([np.zeros(3200), y, np.zeros(3200)]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, 16000)


def _narrow(root: Path) -> Path:
    (root / "clips").mkdir(parents=True)
    (root / "beds").mkdir()
    clip = {"id": "clip-a", "audio": "clips/a.flac", "duration": 1.0, "events": [{"query": "dog barking", "start": 0,
            "end": 1}], "caption": "dog barking", "split": "train", "source": "lugaru-data", "meta": {}}
    (root / "clips.jsonl").write_text(json.dumps(clip) + "\n")
    (root / "beds.jsonl").write_text("")
    return root


def _files(x: Path) -> None:
    base = x / "hedgewars-data" / "usr/share/games/hedgewars/Data/Sounds"
    for i in range(6):
        _tone(base / f"sfx_low{i}.wav", 200 + 10 * i)      # the tagger says Bark
        _tone(base / f"sfx_high{i}.wav", 1000 + 50 * i)    # Meow
    _tone(base / "static.wav", 0)                          # only generic classes: rejected
    _tone(base / "dog.wav", 1500)                          # Meow, but the path says dog: vetoed
    _tone(x / "supertux-data" / "usr/share/games/supertux2/sounds/copy.wav", 200)  # same bytes as sfx_low0
    (x / "supertux-data" / "usr/share/games/supertux2/sounds/copy.wav").write_bytes(
        (base / "sfx_low0.wav").read_bytes())


def test_prepare_wide_corpus_end_to_end(tmp_path):
    x = tmp_path / "x"
    _files(x)
    narrow = _narrow(tmp_path / "narrow")
    cfg = WideConfig(tagger=f"{__name__}:FakeTagger", workers=1)
    dest = tmp_path / "wide"
    prepare_wide_corpus(narrow, [x], dest, cfg)
    wide = [json.loads(line) for line in (dest / "wide.jsonl").read_text().splitlines()]
    assert len(wide) == 12
    labels = {d["meta"]["label"] for d in wide}
    assert labels == {"Bark", "Meow"}
    phrases = {d["events"][0]["query"] for d in wide}
    assert phrases <= set(load_wordings()["Bark"][1]) | set(load_wordings()["Meow"][1])
    assert len(phrases) >= 3                                 # several wordings per class
    for d in wide:
        assert d["meta"]["label_source"] == "tagger" and d["meta"]["confidence"] >= 0.3
        assert (dest / d["audio"]).is_file() and d["source"] == "hedgewars-data"
    assert {d["split"] for d in wide} == {"train", "val", "test"}
    catalog = (dest / "catalog.tsv").read_text()
    assert "path veto (Meow" in catalog and "not confident" in catalog
    union = [json.loads(line) for line in (dest / "clips.jsonl").read_text().splitlines()]
    assert len(union) == 13 and union[0]["meta"]["label_source"] == "path"
    assert (dest / "clips").is_symlink() and (dest / "review.tsv").read_text().count("\n") == 13
    assert (dest / "review-0.png").is_file()

    # deterministic: the decisions redone from the tags, and a resumed tagging, write the same manifests
    first = (dest / "clips.jsonl").read_bytes()
    tags = (dest / "tags.jsonl").read_text().splitlines()
    (dest / "tags.jsonl").write_text("\n".join(tags[:-2]) + "\n" + tags[-2][:20])   # a crash mid-line
    prepare_wide_corpus(narrow, [x], dest, cfg, force=True)
    assert (dest / "clips.jsonl").read_bytes() == first
    assert len({json.loads(t)["recording"] for t in (dest / "tags.jsonl").read_text().splitlines()
                if t.startswith("{") and t.endswith("}")}) == 14


def test_config_rejects_absurd_values():
    with pytest.raises(ValueError, match="min_confidence"):
        WideConfig(min_confidence=3)
    with pytest.raises(ValueError, match="stage_confidence"):
        WideConfig(min_confidence=0.1, stage_confidence=0.2)


def test_events_need_path_keeps_only_confirmed_event_labels(tmp_path):
    x = tmp_path / "x"
    base = x / "hedgewars-data" / "usr/share/games/hedgewars/Data/Sounds"
    _tone(base / "bark_1.wav", 220)      # Bark, and the name says so
    _tone(base / "sfx_2.wav", 230)       # Bark, the name says nothing
    _tone(base / "meow.wav", 1200)       # Meow, confirmed
    narrow = _narrow(tmp_path / "narrow")
    for need, want in ((False, {"bark_1.wav", "sfx_2.wav", "meow.wav"}), (True, {"bark_1.wav", "meow.wav"})):
        dest = tmp_path / f"wide-{need}"
        prepare_wide_corpus(narrow, [x], dest, WideConfig(tagger=f"{__name__}:FakeTagger", workers=1,
                                                          events_need_path=need))
        wide = [json.loads(line) for line in (dest / "wide.jsonl").read_text().splitlines()]
        assert {Path(d["meta"]["path"]).name for d in wide} == want
        assert {Path(d["meta"]["path"]).name: d["meta"]["label_source"] for d in wide}["bark_1.wav"] == "tagger+path"
    assert "path does not confirm (Bark vs sfx_2.wav)" in (dest / "catalog.tsv").read_text()
