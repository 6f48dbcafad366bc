"""earmark manifests as Hugging Face ``datasets``: one row per recording, its audio an ``Audio``
column that decodes (and resamples, and mixes down to mono) when a row is read.

    from data_recipes.hf_dataset import load_manifest_dataset

    ds = load_manifest_dataset("scripts/examples/thunder.jsonl", split="test")
    row = ds[0]
    row["id"], row["duration"]                 # 'example-thunder', 10.0
    row["events"][0]                           # {'query': 'thunder', 'start': 1.14, 'end': 3.44}
    samples = row["audio"].get_all_samples()   # torchcodec AudioSamples (datasets >= 4)
    samples.data.shape, samples.sample_rate    # torch.Size([1, 160000]), 16000

    ds = load_manifest_dataset("scripts/examples/thunder.jsonl", decode=False)  # rows: {"path", "bytes"}
    y = data_recipes.audio.load_audio(ds[0]["audio"]["path"], 16000)          # earmark's own reader

Columns: ``id``, ``audio``, ``duration`` (seconds), ``events`` (a list of ``{query, start, end}``),
``caption``, ``split``, ``source`` (None where the manifest has none) and ``meta`` (the record's
free-form ``meta`` object as JSON text, because its keys differ from record to record; read it
with ``json.loads``).

Decoding is ``datasets``' own: from datasets 4 on it needs ``torchcodec`` (whose version must
match torch's: torchcodec 0.13 for torch 2.13) and FFmpeg's libraries. Without them, load with
``decode=False`` and read the paths with :func:`data_recipes.audio.load_audio`.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from .formats import ManifestRecord, read_jsonl, resolve_audio


def _features(audio):
    import datasets

    text = datasets.Value("string")
    return datasets.Features({
        "id": text, "audio": audio, "duration": datasets.Value("float64"),
        "events": [{"query": text, "start": datasets.Value("float64"), "end": datasets.Value("float64")}],
        "caption": text, "split": text, "source": text, "meta": text,
    })


def _row(manifest: Path, rec: ManifestRecord) -> dict:
    audio = resolve_audio(manifest, rec)
    if not audio.is_file():
        raise FileNotFoundError(f"{manifest}: record {rec.id!r}: audio {audio} does not exist")
    return {"id": rec.id, "audio": str(audio), "duration": rec.duration,
            "events": [e.to_dict() for e in rec.events], "caption": rec.caption, "split": rec.split,
            "source": rec.source, "meta": None if rec.meta is None else json.dumps(rec.meta, sort_keys=True)}


def load_manifest_dataset(path: str | os.PathLike, *, split: str | None = None, sampling_rate: int = 16000,
                          mono: bool = True, decode: bool = True):
    """A manifest JSONL (validated line by line; a bad line raises ``FormatError`` naming the file
    and line) as a ``datasets.Dataset`` with an ``Audio`` column. ``split``: only the records of
    that split; ``sampling_rate``: the rate the audio decodes at (the scorer's 16 kHz by default);
    ``mono``: mix every recording down to one channel; ``decode=False``: rows hold the audio's
    path instead of a decoder (no torchcodec needed). Every audio file must exist."""
    import datasets

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    if not isinstance(sampling_rate, int) or isinstance(sampling_rate, bool) or not 1000 <= sampling_rate <= 384000:
        raise ValueError(f"sampling_rate={sampling_rate!r}: must be an integer rate in Hz (1000-384000)")
    if decode and importlib.util.find_spec("torchcodec") is None:
        raise ImportError("load_manifest_dataset(decode=True) needs torchcodec to decode audio "
                          "(pip install 'torchcodec==0.13.*' for torch 2.13); or pass decode=False")
    records = read_jsonl(path, ManifestRecord)
    if split is not None:
        found = sorted({str(r.split) for r in records})
        records = [r for r in records if r.split == split]
        if not records:
            raise ValueError(f"{path}: no records of split {split!r} (splits present: {found})")
    plain = datasets.Dataset.from_list([_row(path, r) for r in records],
                                       features=_features(datasets.Value("string")))
    mixdown = {"num_channels": 1} if mono else {}
    return plain.cast_column("audio", datasets.Audio(sampling_rate=sampling_rate, decode=decode, **mixdown))
