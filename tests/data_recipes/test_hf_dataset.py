"""Manifests as Hugging Face datasets: columns, the Audio column decoding to mono 16 kHz, split
selection, and the errors (bad line, missing audio, absent split, bad rate)."""
import json

import numpy as np
import pytest
import soundfile as sf
from dr_fakes import write_audio

from data_recipes.formats import FormatError, ManifestRecord, write_jsonl
from data_recipes.hf_dataset import load_manifest_dataset


@pytest.fixture
def manifest(tmp_path):
    write_audio(tmp_path / "audio" / "a.wav", 2.0)                          # 16 kHz mono
    write_audio(tmp_path / "audio" / "b.flac", 1.5, sr=44100, channels=2)   # 44.1 kHz stereo
    recs = [ManifestRecord.from_dict({"id": "a", "audio": "audio/a.wav", "duration": 2.0, "split": "train",
                                      "events": [{"query": "dog barking", "start": 0.5, "end": 1.25}],
                                      "meta": {"seed": 3, "gains": [0.5, 1.0]}}),
            ManifestRecord.from_dict({"id": "b", "audio": "audio/b.flac", "duration": 1.5, "split": "test",
                                      "caption": "rain", "source": "synth"})]
    path = tmp_path / "manifest.jsonl"
    write_jsonl(path, recs)
    return path


def test_columns_and_fields(manifest):
    ds = load_manifest_dataset(manifest, decode=False)
    assert ds.num_rows == 2
    assert set(ds.column_names) == {"id", "audio", "duration", "events", "caption", "split", "source", "meta"}
    a, b = ds[0], ds[1]
    assert a["id"] == "a" and a["duration"] == 2.0 and a["split"] == "train"
    assert a["events"] == [{"query": "dog barking", "start": 0.5, "end": 1.25}]
    assert json.loads(a["meta"]) == {"seed": 3, "gains": [0.5, 1.0]}
    assert b["events"] == [] and b["meta"] is None and (b["caption"], b["source"]) == ("rain", "synth")
    assert a["audio"]["path"] == str(manifest.parent / "audio" / "a.wav")     # relative to the manifest


def test_audio_decodes_mono_at_the_asked_rate(manifest):
    ds = load_manifest_dataset(manifest)
    a = ds[0]["audio"].get_all_samples()
    assert a.sample_rate == 16000 and tuple(a.data.shape) == (1, 32000)
    ref, _ = sf.read(manifest.parent / "audio" / "a.wav", dtype="float32")
    np.testing.assert_allclose(a.data[0].numpy(), ref, atol=1e-4)
    b = ds[1]["audio"].get_all_samples()                                       # 44.1 kHz stereo in
    assert b.sample_rate == 16000 and b.data.shape[0] == 1 and abs(b.data.shape[1] - 24000) <= 16
    stereo = load_manifest_dataset(manifest, sampling_rate=8000, mono=False)[1]["audio"].get_all_samples()
    assert stereo.sample_rate == 8000 and stereo.data.shape[0] == 2


def test_split_selects_records(manifest):
    ds = load_manifest_dataset(manifest, split="test", decode=False)
    assert ds["id"] == ["b"]
    with pytest.raises(ValueError, match=r"manifest.jsonl: no records of split 'val' \(splits present: "
                                         r"\['test', 'train'\]\)"):
        load_manifest_dataset(manifest, split="val")


def test_errors_name_the_input(manifest, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such manifest"):
        load_manifest_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="sampling_rate=0"):
        load_manifest_dataset(manifest, sampling_rate=0)
    (manifest.parent / "audio" / "b.flac").unlink()
    with pytest.raises(FileNotFoundError, match=r"record 'b': audio .*b.flac does not exist"):
        load_manifest_dataset(manifest)
    manifest.write_text(manifest.read_text() + "{bad\n")
    with pytest.raises(FormatError, match=":3:"):
        load_manifest_dataset(manifest)
