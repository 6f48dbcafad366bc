"""The Debian sound corpus: real recorded sound effects and ambience beds from Debian packages.

Two public functions, as in lhotse recipes:

* :func:`download_sounds` — ``apt-get download`` + ``dpkg -x`` the data packages listed in
  :data:`~data_recipes.corpus_labels.PACKAGES` and unpack their containers (zip .pk3, OpenTTD .cat,
  Qt .rcc). A ``.completed`` marker makes re-runs no-ops.
* :func:`prepare_corpus` — label every file by the reviewed rules (:mod:`.corpus_labels`), split
  train/val/test **by source recording** (stratified per class), clean each event recording
  (:func:`.clips.clean_event`: FineLAP energy-window clipping, SpotSound silence trim, crops of
  over-long segments; FLAM's RMS relabel for the event bounds), concatenate single footsteps /
  key presses into walking / typing, and write 16 kHz mono FLAC plus two manifests::

      DEST/clips/<split>/<package>/<name>.flac   DEST/clips.jsonl   (one event per clip)
      DEST/beds/<split>/<package>/<name>.flac    DEST/beds.jsonl    (no events; meta.contains)
      DEST/catalog.tsv (every labelled source: split, outcome, licence)   DEST/skipped.tsv (file, reason)
      DEST/class_counts.png (clips per class and split)

  Every clip's ``meta`` holds its ``label``, source ``path`` and ``recordings`` (the split unit).

Split rules (per class, over distinct recordings, in a seeded hash order): 1 recording -> train
only; 2 -> train + test (so the class can be evaluated; no val); 3+ -> at least one each in val and
test, about ``val_frac``/``test_frac`` of them. Beds are split the same way over all recorded beds
(at least two val and two test beds). Classes with thousands of recordings (tuxpaint's 6387
narration snippets, asterisk's 548 prompts) are capped at ``cap_per_class`` recordings, chosen in
the same seeded order, so they do not swamp the others.

Synthesised sources (``synth_sources``): English speech from flite and espeak-ng (the only source
of 'a man speaking'; the split unit is the sentence, so no sentence is in two splits), General-MIDI
programs rendered by fluidsynth from the two Debian sound fonts (one recording per font x program),
and numpy-generated noise beds (pink / brown / hum; one recording per split and variant).
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .audio import AudioError, load_audio, save_audio
from .clips import clean_event, concat_hits, peak_normalise, rms_relabel
from .corpus_labels import (AUDIO_SUFFIXES, HIT_CLASSES, PACKAGES, bed_caption, bed_contains, label_for,
                            query_for)
from .formats import Event, ManifestRecord, write_jsonl

__all__ = ["CorpusConfig", "Source", "download_sounds", "scan_sounds", "synth_sources", "missing_synth_tools", "assign_splits",
           "prepare_corpus", "CorpusResult", "SPLITS", "plot_counts"]

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass
class CorpusConfig:
    """How the corpus recipe cleans, splits and caps. JSON-serialisable."""

    sr: int = 16000
    seed: int = 0
    val_frac: float = 0.1
    test_frac: float = 0.1
    cap_per_class: int = 150          # recordings per class at most (narration would swamp the rest)
    min_clip: float = 0.1             # s; shorter clean segments are dropped (drum hits are ~0.1 s)
    max_clip: float = 7.5             # s; FineLAP keeps 1-7.5 s segments; longer ones are cropped
    max_crops: int = 3                # pieces kept from one over-long segment
    rel_db: float = -20.0             # energy-window threshold relative to the loudest window
    trim_db: float = -20.0            # silence trim relative to the segment's mean power
    relabel_floor_db: float = -70.0   # FLAM RMS relabel floor (dBFS, after peak normalisation)
    bed_max: float = 180.0            # s; longer beds are cut (the synth recipes use <= 60 s)
    hit_clips_max: int = 40           # walking/typing clips per class and split at most
    synth_sources: bool = True        # render TTS speech, GM programs and noise beds
    workers: int = 2

    def __post_init__(self):
        for name in ("val_frac", "test_frac"):
            v = getattr(self, name)
            if not 0 <= v < 0.5:
                raise ValueError(f"CorpusConfig.{name} must be in [0, 0.5), got {v}")
        if self.cap_per_class < 1:
            raise ValueError(f"CorpusConfig.cap_per_class must be >= 1, got {self.cap_per_class}")
        if not 0 < self.min_clip < self.max_clip:
            raise ValueError(f"CorpusConfig.min_clip ({self.min_clip}) must be in (0, max_clip={self.max_clip})")
        if self.sr <= 0:
            raise ValueError(f"CorpusConfig.sr must be positive, got {self.sr}")
        if self.workers < 1:
            raise ValueError(f"CorpusConfig.workers must be >= 1, got {self.workers}")


@dataclass
class Source:
    """One labelled source recording (a file, or a generator command for synthesised ones)."""

    label: str
    package: str
    path: str                     # display path inside the package (or 'synth:...')
    file: str | None = None       # the file on disk (None for generators)
    recording: str = ""           # the split unit: sources with the same recording share a split
    kind: str = "file"            # file | tts | gm | noise
    params: dict = field(default_factory=dict)

    @property
    def is_bed(self) -> bool:
        return self.label.startswith("background: ")


# ----------------------------------------------------------------------------------- fetch
def download_sounds(target_dir: str | os.PathLike, *, force: bool = False,
                    packages: list[str] | tuple[str, ...] = tuple(PACKAGES)) -> Path:
    """Fetch and unpack ``packages`` (default: the corpus packages) into ``target_dir/x/<package>``;
    returns the x root.

    Needs ``apt-get`` with a reachable Debian mirror (``apt-get update`` done) and ``dpkg``.
    """
    target = Path(target_dir)
    x = target / "x"
    marker = target / ".completed"
    if marker.is_file() and not force:
        return x
    debs = target / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    os.chmod(debs, 0o777)  # lets apt's _apt sandbox user write there
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        res = subprocess.run(["apt-get", "download", "-q", *missing], cwd=debs, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"apt-get download failed for {missing}: {res.stderr.strip()[-400:]}")
    from .corpus_containers import extract_containers

    for p in packages:
        deb = sorted(debs.glob(f"{p}_*.deb"))
        if not deb:
            raise FileNotFoundError(f"{debs}: no .deb for package {p!r}")
        (x / p).mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb[-1]), str(x / p)], check=True)
        n = extract_containers(x / p)
        if n:
            log.info("%s: %d container members extracted", p, n)
    marker.write_text("done\n")
    return x


# ------------------------------------------------------------------------------------ scan
def _display_path(pkg_root: Path, f: Path) -> str:
    rel = f.relative_to(pkg_root).as_posix()
    if rel.startswith("_c/"):
        rel = rel[3:]
        for suf in (".pk3", ".wz", ".cat", ".rcc"):
            i = rel.find(suf + "/")
            if i >= 0:
                return rel[:i + len(suf)] + "!/" + rel[i + len(suf) + 1:]
    return rel


def scan_sounds(x_root: str | os.PathLike) -> list[Source]:
    """Every labelled audio file under ``x_root/<package>`` (exact duplicates dropped: same bytes
    -> first in sorted order). Sorted, so the result is the same on every machine."""
    x_root = Path(x_root)
    if not x_root.is_dir():
        raise FileNotFoundError(f"{x_root}: no unpacked sound tree (expected {x_root}/<package>/...)")
    if not any((x_root / p).is_dir() for p in PACKAGES):
        raise FileNotFoundError(f"{x_root}: none of the corpus packages is unpacked here "
                                f"(expected {x_root}/<package>/..., e.g. {x_root}/{PACKAGES[0]})")
    out: list[Source] = []
    seen: set[str] = set()
    for pkg in sorted(PACKAGES):
        root = x_root / pkg
        if not root.is_dir():
            log.warning("%s: package %s is not unpacked; skipped", root, pkg)
            continue
        files = []
        for dp, _, fns in os.walk(root):
            for fn in fns:
                if fn.lower().endswith(AUDIO_SUFFIXES):
                    files.append(Path(dp) / fn)
        for f in sorted(files):
            disp = _display_path(root, f)
            label = label_for(pkg, disp)
            if label is None:
                continue
            h = hashlib.md5(f.read_bytes()).hexdigest()
            if h in seen:
                continue
            seen.add(h)
            out.append(Source(label, pkg, disp, str(f), recording=f"{pkg}:{disp}"))
    return out


# ------------------------------------------------------------------ synthesised sources
_SENTENCES = [
    "The train to the city leaves at half past nine.", "Please close the door when you leave the room.",
    "I think it is going to rain later this afternoon.", "Could you pass me the salt and the pepper?",
    "We walked along the river until the sun went down.", "The meeting has been moved to Thursday morning.",
    "My brother bought a new bicycle last weekend.", "Turn left at the next corner and keep going.",
    "The children are playing football in the park.", "She left her keys on the kitchen table.",
    "Dinner will be ready in about twenty minutes.", "The museum is closed on Mondays and holidays.",
    "He forgot to water the plants again.", "Let me know if you need any help with that.",
    "The library opens at eight o'clock sharp.", "It was the coldest winter in thirty years.",
    "Remember to bring an umbrella tomorrow.", "The coffee machine on the second floor is broken.",
    "Our flight was delayed by almost two hours.", "Thank you very much for coming today.",
    "The baker sells fresh bread every morning.", "I have never seen so many stars in the sky.",
    "Write your name at the top of the page.", "The bus stop is just across the street.",
    "This soup needs a little more salt.", "We should leave early to avoid the traffic.",
    "The old bridge was repaired last summer.", "Can you hear the music from next door?",
    "Please speak a little more slowly.", "The garden looks beautiful in the spring.",
    "He reads the newspaper every morning.", "Tomorrow we will visit my grandmother.",
    "The shop around the corner sells used books.", "Put the boxes in the back of the car.",
    "I will call you as soon as I arrive.", "The lecture starts in five minutes.",
    "Everyone clapped when the band finished playing.", "The cat is sleeping on the windowsill.",
    "Please turn off the lights before bed.", "Our team won the match by two points.",
]
_MALE_VOICES = [("flite", "awb"), ("flite", "rms"), ("flite", "kal16"), ("espeak-ng", "en-us+m1"),
                ("espeak-ng", "en-us+m3"), ("espeak-ng", "en-us+m5"), ("espeak-ng", "en-us+m7")]
_FEMALE_VOICES = [("flite", "slt"), ("espeak-ng", "en-us+f1"), ("espeak-ng", "en-us+f2"),
                  ("espeak-ng", "en-us+f3"), ("espeak-ng", "en-us+f4")]
# General-MIDI program -> class (programs 122-127 are GM's sound effects)
_GM = {122: "background: sea waves (GM seashore)", 123: "bird chirping", 124: "telephone ringing",
       125: "helicopter flying", 126: "applause", 127: "gunshot", 0: "piano", 24: "guitar", 25: "guitar",
       40: "violin or cello", 42: "violin or cello", 56: "brass instrument", 57: "brass instrument",
       58: "brass instrument", 73: "flute", 19: "organ", 65: "saxophone or clarinet",
       71: "saxophone or clarinet", 21: "accordion or harmonica", 22: "accordion or harmonica", 13: "xylophone",
       46: "harp"}
_SOUNDFONTS = [("timgm6mb-soundfont", "usr/share/sounds/sf2/TimGM6mb.sf2"),
               ("musescore-general-soundfont-small", "usr/share/sounds/sf3/MuseScore_General_Lite.sf3")]
_NOISE_BEDS = ["steady pink noise", "wind-like brown noise", "room tone with mains hum", "ventilation hum",
               "surf-like modulated noise"]


SYNTH_TOOLS = {"flite": "flite", "espeak-ng": "espeak-ng", "fluidsynth": "fluidsynth"}   # tool -> Debian package


def missing_synth_tools() -> list[str]:
    """The generator programs the synthesised sources need that are not on PATH."""
    return [t for t in SYNTH_TOOLS if shutil.which(t) is None]


def synth_sources(x_root: str | os.PathLike) -> list[Source]:
    """Generator sources: TTS speech (when flite / espeak-ng are installed), GM programs (when
    fluidsynth and the sound fonts are there) and numpy noise beds (always)."""
    x_root = Path(x_root)
    missing = missing_synth_tools()
    if missing:  # never silent: what is missing takes classes ('a man speaking', GM programs) with it
        log.warning("synthesised sources without %s (not installed: apt-get install %s): their speech / "
                    "General-MIDI clips are left out", ", ".join(missing),
                    " ".join(SYNTH_TOOLS[t] for t in missing))
    out: list[Source] = []
    for i, text in enumerate(_SENTENCES):
        # two male voices and one female voice per sentence, rotating through the voices
        for k in range(2):
            eng, voice = _MALE_VOICES[(i * 2 + k) % len(_MALE_VOICES)]
            if shutil.which(eng):
                out.append(Source("a man speaking", eng, f"synth:{eng} {voice} #{i}", recording=f"tts-sentence-{i}",
                                  kind="tts", params={"engine": eng, "voice": voice, "text": text}))
        eng, voice = _FEMALE_VOICES[i % len(_FEMALE_VOICES)]
        if shutil.which(eng):
            out.append(Source("a woman speaking", eng, f"synth:{eng} {voice} #{i}", recording=f"tts-sentence-{i}",
                              kind="tts", params={"engine": eng, "voice": voice, "text": text}))
    if shutil.which("fluidsynth"):
        for pkg, rel in _SOUNDFONTS:
            sf = x_root / pkg / rel
            if not sf.is_file():
                continue
            for prog, lab in sorted(_GM.items()):
                out.append(Source(lab, pkg + "+fluidsynth", f"synth:fluidsynth {sf.name} program {prog}",
                                  recording=f"gm-{pkg}-{prog}", kind="gm",
                                  params={"soundfont": str(sf), "program": prog}))
    for name in _NOISE_BEDS:
        for split, n in (("train", 3), ("val", 1), ("test", 1)):
            for v in range(n):
                out.append(Source(f"background: {name} (synthetic)", "numpy", f"synth:noise {name} {split} {v}",
                                  recording=f"noise-{name}-{split}-{v}", kind="noise",
                                  params={"name": name, "split": split, "variant": v}))
    return out


def _midi_multi(tracks: list[tuple[int, int, list[tuple[float, float, int, int]]]], tpq: int = 480,
                tempo: int = 500000) -> bytes:
    """A format-0 MIDI file: for each (program, channel, notes) a program change on that channel
    and its (start_s, dur_s, pitch, velocity) notes."""
    import struct

    def vlq(n: int) -> bytes:
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        return bytes(reversed(out))

    tps = tpq * 1e6 / tempo
    ev = [(0, 0, bytes([0xFF, 0x51, 0x03]) + tempo.to_bytes(3, "big"))]
    end = 0
    for prog, ch, notes in tracks:
        t0 = min((int(n[0] * tps) for n in notes), default=0)
        ev.append((t0, 1, bytes([0xC0 | ch, prog])))  # at the slot start: channels may be reused
        for s, d, p, v in notes:
            ev.append((int(s * tps), 3, bytes([0x90 | ch, p, v])))
            ev.append((int((s + d) * tps), 2, bytes([0x80 | ch, p, 0])))
            end = max(end, int((s + d) * tps))
    ev.sort(key=lambda e: (e[0], e[1]))
    trk, t = b"", 0
    for tt, _, e in ev:
        trk += vlq(tt - t) + e
        t = tt
    trk += vlq(int(_GM_SLOT * tps)) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(trk)) + trk


def _noise_bed(name: str, seed: int, sr: int, dur: float = 60.0) -> np.ndarray:
    """Deterministic coloured-noise ambience (replaces the catalog's sox commands, whose noise is
    not reproducible across runs)."""
    rng = np.random.default_rng(seed)
    n = int(dur * sr)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    t = np.arange(n) / sr
    if name == "steady pink noise":
        y = np.fft.irfft(spec / np.sqrt(f), n)
    elif name == "wind-like brown noise":
        y = np.fft.irfft(spec / f * (f < 700), n)
        y *= 1 + 0.6 * np.sin(2 * np.pi * rng.uniform(0.05, 0.1) * t + rng.uniform(0, 6.28))
    elif name == "room tone with mains hum":
        y = np.fft.irfft(spec / f * (f < 300), n)
        y = y / np.std(y) + 0.3 * np.sin(2 * np.pi * 50 * t)
    elif name == "ventilation hum":
        y = np.fft.irfft(spec / np.sqrt(f) * ((f > 250) & (f < 400)), n)
        y = y / np.std(y) + 0.4 * np.sin(2 * np.pi * 120 * t)
    else:  # surf-like modulated noise
        y = np.fft.irfft(spec / f * (f < 1200), n)
        y *= 1 + 0.85 * np.sin(2 * np.pi * rng.uniform(0.07, 0.11) * t)
    return peak_normalise(y.astype(np.float32), -12.0)


_GM_SLOT = 4.0       # s per event program in the one-call render
_GM_BED_SLOT = 62.0  # s per background program (one 60 s note: a bed must outlast a 60 s mixture)


def _gm_notes(prog: int, t0: float, bed: bool = False) -> list[tuple[float, float, int, int]]:
    # a short phrase in the middle register; GM's sound effects (122-127) get one long note
    if bed:
        return [(t0, _GM_BED_SLOT - 2.0, 60, 110)]
    if prog >= 122:
        return [(t0, 2.5, 60, 110)]
    rng = np.random.default_rng(prog)
    pitches = rng.choice([55, 57, 60, 62, 64, 65, 67, 69, 72], size=6)
    return [(t0 + 0.45 * i, 0.42, int(p), 100) for i, p in enumerate(pitches)]


def _render_soundfonts(sources: list[Source], work: Path, sr: int) -> list[Source]:
    """Render every GM program of a sound font in ONE fluidsynth call (loading a compressed .sf3
    takes ~20 s, too slow per program), each program in its own slot (``_GM_SLOT`` s for events,
    ``_GM_BED_SLOT`` s for beds); the gm sources then read their slot. Sources whose render fails
    are dropped."""
    by_sf: dict[str, list[Source]] = collections.defaultdict(list)
    for s in sources:
        if s.kind == "gm":
            by_sf[s.params["soundfont"]].append(s)
    out = [s for s in sources if s.kind != "gm"]
    work.mkdir(parents=True, exist_ok=True)
    for sf, srcs in sorted(by_sf.items()):
        wav = work / (Path(sf).stem + ".wav")
        mid = work / (Path(sf).stem + ".mid")
        tracks, offsets, t = [], [], 0.0
        for s in srcs:
            bed = s.is_bed
            # one channel; each slot starts with its own program change
            tracks.append((s.params["program"], 0, _gm_notes(s.params["program"], t, bed)))
            offsets.append((t, _GM_BED_SLOT if bed else _GM_SLOT))
            t += offsets[-1][1]
        mid.write_bytes(_midi_multi(tracks))
        res = subprocess.run(["fluidsynth", "-ni", "-q", "-r", str(sr), "-F", str(wav), sf, str(mid)],
                             capture_output=True, text=True, timeout=600)
        if res.returncode != 0 or not wav.is_file():
            log.warning("%s: fluidsynth render failed (%s); its GM sources skipped", sf, res.stderr.strip()[-200:])
            continue
        for s, (off, slot) in zip(srcs, offsets):
            out.append(Source(s.label, s.package, s.path, recording=s.recording, kind="gm",
                              params=dict(s.params, render=str(wav), offset=off, slot=slot)))
    return out


def _render(src: Source, sr: int, seed: int) -> np.ndarray:
    """Samples of a generator source (mono float32 at ``sr``)."""
    if src.kind == "noise":
        s = int(hashlib.sha1(f"{seed}:{src.recording}".encode()).hexdigest()[:8], 16)
        return _noise_bed(src.params["name"], s, sr)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        if src.kind == "tts":
            p = src.params
            if p["engine"] == "flite":
                cmd = ["flite", "-voice", p["voice"], "-t", p["text"], "-o", str(wav)]
            else:
                cmd = ["espeak-ng", "-v", p["voice"], "-s", "150", "-w", str(wav), p["text"]]
        else:  # gm: a slice of the one-call render of its sound font (see _render_soundfonts)
            y = load_audio(src.params["render"], sr)
            a = int(round(src.params["offset"] * sr))
            return y[a:a + int(round(src.params["slot"] * sr))]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0 or not wav.is_file():
            raise AudioError(src.path, f"generator failed: {res.stderr.strip()[-200:]}")
        return load_audio(wav, sr)


# ---------------------------------------------------------------------------------- splits
def _order_key(seed: int, key: str) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def _split_counts(n: int, val_frac: float, test_frac: float) -> tuple[int, int, int]:
    if n == 1:
        return 1, 0, 0
    if n == 2:
        return 1, 0, 1
    n_val = max(1, int(round(n * val_frac)))
    n_test = max(1, int(round(n * test_frac)))
    return n - n_val - n_test, n_val, n_test


def assign_splits(sources: list[Source], cfg: CorpusConfig) -> tuple[dict[str, str], list[Source]]:
    """Split recordings per class (see module doc) and cap big classes.

    Returns ({recording: split}, kept sources). Noise beds come with their split in ``params``.
    """
    by_label: dict[str, dict[str, list[Source]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for s in sources:
        by_label[s.label][s.recording].append(s)
    split_of: dict[str, str] = {}
    kept: list[Source] = []
    recorded_beds: list[str] = []
    for label in sorted(by_label):
        recs = sorted(by_label[label], key=lambda r: _order_key(cfg.seed, r))
        if label.startswith("background: "):
            for r in recs:
                fixed = by_label[label][r][0].params.get("split")
                if fixed:
                    split_of[r] = fixed
                else:
                    recorded_beds.append(r)
                kept.extend(by_label[label][r])
            continue
        if label not in HIT_CLASSES:
            recs = recs[:cfg.cap_per_class]
        n_train, n_val, n_test = _split_counts(len(recs), cfg.val_frac, cfg.test_frac)
        order = ["val"] * n_val + ["test"] * n_test + ["train"] * n_train
        for r, sp in zip(recs, order):
            # a recording already split under another label (a TTS sentence) keeps its split
            split_of.setdefault(r, sp)
            kept.extend(by_label[label][r])
    recorded_beds.sort(key=lambda r: _order_key(cfg.seed, r))
    n = len(recorded_beds)
    n_val = min(max(2, int(round(n * cfg.val_frac))), n // 3) if n >= 3 else 0
    n_test = min(max(2, int(round(n * cfg.test_frac))), n // 3) if n >= 3 else 0
    for i, r in enumerate(recorded_beds):
        split_of[r] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    return split_of, kept


# ---------------------------------------------------------------------------- processing
def _safe_name(s: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in s)
    return keep.strip("_")[-80:] or "x"


def _load(src: Source, cfg: CorpusConfig) -> np.ndarray:
    y = _render(src, cfg.sr, cfg.seed) if src.kind != "file" else load_audio(src.file, cfg.sr)
    if float(np.max(np.abs(y))) < 1e-4:
        raise AudioError(src.file or src.path, "silent (peak below -80 dBFS)")
    return y


def _process(job: tuple[Source, str, CorpusConfig, str]) -> dict:
    """One source -> records written (clips or beds), hit arrays, or a skip reason."""
    src, split, cfg, dest = job
    dest = Path(dest)
    try:
        y = _load(src, cfg)
    except (AudioError, OSError, subprocess.TimeoutExpired) as exc:
        return {"skip": f"{src.file or src.path}\t{exc}"}
    meta = {"label": src.label, "path": src.path, "recordings": [src.recording]}
    base = _safe_name(Path(src.path).stem) + "-" + _order_key(0, src.recording)[:6]
    if src.is_bed:
        y = peak_normalise(y[:int(cfg.bed_max * cfg.sr)], -1.0)
        cap = bed_caption(src.label)
        rel = f"beds/{split}/{_safe_name(src.package)}/{base}.flac"
        save_audio(dest / rel, y, cfg.sr)
        meta["contains"] = bed_contains(cap)
        rec = ManifestRecord(f"bed-{base}", rel, len(y) / cfg.sr, [], caption=cap, split=split,
                             source=src.package, meta=meta)
        return {"beds": [rec.to_dict()]}
    pieces = clean_event(y, cfg.sr, min_dur=cfg.min_clip if src.label not in HIT_CLASSES else 0.05,
                         max_dur=cfg.max_clip, max_pieces=cfg.max_crops, rel_db=cfg.rel_db, trim_db=cfg.trim_db)
    if not pieces:
        return {"skip": f"{src.file or src.path}\tno clean segment of at least {cfg.min_clip} s"}
    if src.label in HIT_CLASSES:
        a, b = pieces[0]
        return {"hit": (src.label, split, src.recording, src.path, src.package, y[a:b].copy())}
    out = []
    q = query_for(src.label)
    for k, (a, b) in enumerate(pieces):
        clip = peak_normalise(y[a:b], -1.0)
        rec = _clip_record(clip, cfg, f"clip-{base}-{k}", f"clips/{split}/{_safe_name(src.package)}/{base}-{k}.flac",
                           q, split, src.package, dict(meta, segment=[round(a / cfg.sr, 3), round(b / cfg.sr, 3)]))
        if rec is None:
            continue
        save_audio(dest / rec.audio, clip, cfg.sr)
        out.append(rec.to_dict())
    if not out:
        return {"skip": f"{src.file or src.path}\tnothing above {cfg.relabel_floor_db} dBFS after cleaning"}
    return {"clips": out}


def _clip_record(clip: np.ndarray, cfg: CorpusConfig, rid: str, rel: str, query: str, split: str, package: str,
                 meta: dict) -> ManifestRecord | None:
    runs = rms_relabel(clip, cfg.sr, floor_db=cfg.relabel_floor_db)
    if not runs:
        return None
    dur = len(clip) / cfg.sr
    start = round(runs[0][0] / cfg.sr, 2)
    end = min(round(runs[-1][1] / cfg.sr, 2), round(dur, 2))
    if end <= start:
        return None
    return ManifestRecord(rid, rel, dur, [Event(query, start, end)], caption=query, split=split, source=package,
                          meta=meta)


def _make_hit_clips(hits: list[tuple], cfg: CorpusConfig, dest: Path) -> list[dict]:
    """Concatenate single hits of one class and split into walking / typing clips."""
    groups: dict[tuple[str, str], list[tuple]] = collections.defaultdict(list)
    for h in hits:
        groups[(h[0], h[1])].append(h)
    out = []
    for (label, split), hs in sorted(groups.items()):
        query, (lo, hi), (g0, g1) = HIT_CLASSES[label]
        hs.sort(key=lambda h: h[2])
        rng = np.random.default_rng(int(_order_key(cfg.seed, f"{label}|{split}")[:8], 16))
        n_clips = min(cfg.hit_clips_max, max(3, len(hs)))
        for i in range(n_clips):
            k = int(rng.integers(lo, hi + 1))
            pick = [hs[j] for j in rng.choice(len(hs), size=k, replace=len(hs) < k)]
            gaps = rng.uniform(g0, g1, size=k - 1).tolist()
            y = peak_normalise(concat_hits([p[5] for p in pick], gaps, cfg.sr), -1.0)
            rid = f"clip-{_safe_name(query)}-{split}-{i:03d}"
            meta = {"label": label, "paths": [p[3] for p in pick], "recordings": sorted({p[2] for p in pick}),
                    "concatenated": k}
            rec = _clip_record(y, cfg, rid, f"clips/{split}/concat/{rid}.flac", query, split,
                               "+".join(sorted({p[4] for p in pick})), meta)
            if rec is None:
                continue
            save_audio(dest / rec.audio, y, cfg.sr)
            out.append(rec.to_dict())
    return out


def plot_counts(counts: dict[str, dict[str, int]], png: str | os.PathLike) -> Path:
    """Horizontal stacked bars of clips per class and split (beds included, marked [bed])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(counts, key=lambda q: (q.startswith("[bed]"), -sum(counts[q].values()), q))
    fig, ax = plt.subplots(figsize=(9, 0.18 * len(names) + 1.2))
    left = np.zeros(len(names))
    for sp, colour in zip(SPLITS, ("tab:blue", "tab:orange", "tab:green")):
        v = np.array([counts[q].get(sp, 0) for q in names], dtype=float)
        ax.barh(range(len(names)), v, left=left, color=colour, label=sp)
        left += v
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    ax.invert_yaxis()
    for i, total in enumerate(left):  # small classes are thin bars: print the numbers too
        c = counts[names[i]]
        ax.text(total + 0.5, i, f"{c.get('train', 0)}/{c.get('val', 0)}/{c.get('test', 0)}", va="center",
                fontsize=5)
    ax.set_xlabel("clips (train/val/test)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


@dataclass
class CorpusResult:
    clips: int
    beds: int
    skipped: list[str]
    counts: dict[str, dict[str, int]]   # query -> split -> clips

    def table(self) -> str:
        lines = [f"{'class':48s} {'train':>6s} {'val':>5s} {'test':>5s}"]
        for q in sorted(self.counts):
            c = self.counts[q]
            lines.append(f"{q[:48]:48s} {c.get('train', 0):6d} {c.get('val', 0):5d} {c.get('test', 0):5d}")
        return "\n".join(lines)


def _progress(it, total: int, desc: str):
    try:
        from tqdm import tqdm

        return tqdm(it, total=total, desc=desc, file=sys.stderr, mininterval=1.0)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return it


def prepare_corpus(sounds: str | os.PathLike, dest: str | os.PathLike, cfg: CorpusConfig | None = None, *,
                   force: bool = False, sources: list[Source] | None = None) -> CorpusResult:
    """Write the clip and bed manifests (see module doc) from an unpacked sound tree.

    ``sounds`` is the directory holding ``x/<package>`` (or the ``x`` directory itself).
    ``sources`` overrides the scan (tests pass a tiny fake corpus this way). A ``.completed``
    marker in ``dest`` makes a re-run a no-op unless ``force``.
    """
    cfg = cfg or CorpusConfig()
    dest = Path(dest)
    marker = dest / ".completed"
    if marker.is_file() and not force:
        info = json.loads(marker.read_text())
        return CorpusResult(info["clips"], info["beds"], info.get("skipped", []), info["counts"])
    x_root = Path(sounds)
    if (x_root / "x").is_dir():
        x_root = x_root / "x"
    if sources is None:
        sources = scan_sounds(x_root)
        if cfg.synth_sources:
            sources += synth_sources(x_root)
    split_of, kept = assign_splits(sources, cfg)
    if any(s.kind == "gm" for s in kept):
        kept = _render_soundfonts(kept, dest / "_render", cfg.sr)
    for sub in ("clips", "beds"):
        if (dest / sub).exists():
            shutil.rmtree(dest / sub)  # a previous partial run: start clean, outputs are cheap to redo
    dest.mkdir(parents=True, exist_ok=True)
    jobs = [(s, split_of[s.recording], cfg, str(dest)) for s in kept]
    clips, beds, hits, skipped = [], [], [], []
    if cfg.workers > 1:
        with ProcessPoolExecutor(cfg.workers) as ex:
            results = list(_progress(ex.map(_process, jobs, chunksize=4), len(jobs), "corpus"))
    else:
        results = [_process(j) for j in _progress(jobs, len(jobs), "corpus")]
    from .corpus_licenses import license_for

    catalog = []  # every labelled source, its licence and what became of it
    kept_ids = {id(s) for s in kept}
    for s in sources:
        if id(s) not in kept_ids and s.kind != "gm":
            catalog.append((s.label, s.package, s.path, s.recording, "-", "capped (cap_per_class)",
                            license_for(x_root, s.package, s.path)))
    for (s, split, _, _), r in zip(jobs, results):
        outcome = ("skipped: " + r["skip"].split("\t", 1)[1] if "skip" in r else
                   f"{len(r.get('clips', []))} clip(s)" if "clips" in r else "bed" if "beds" in r else
                   "hit (concatenated)")
        catalog.append((s.label, s.package, s.path, s.recording, split, outcome,
                        license_for(x_root, s.package, s.path)))
    for r in results:
        clips += r.get("clips", [])
        beds += r.get("beds", [])
        if "hit" in r:
            hits.append(r["hit"])
        if "skip" in r:
            skipped.append(r["skip"])
            log.warning("skipped %s", r["skip"].replace("\t", ": "))
    clips += _make_hit_clips(hits, cfg, dest)
    clips.sort(key=lambda d: d["id"])
    beds.sort(key=lambda d: d["id"])
    write_jsonl(dest / "clips.jsonl", clips)
    write_jsonl(dest / "beds.jsonl", beds)
    (dest / "skipped.tsv").write_text("file\treason\n" + "".join(s + "\n" for s in skipped))
    (dest / "catalog.tsv").write_text("label\tpackage\tpath\trecording\tsplit\toutcome\tlicense\n" + "".join(
        "\t".join(row) + "\n" for row in sorted(catalog)))
    counts: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.Counter())
    for d in clips:
        counts[d["events"][0]["query"]][d["split"]] += 1
    for d in beds:
        counts["[bed] " + d["caption"]][d["split"]] += 1
    counts = {q: dict(c) for q, c in counts.items()}
    (dest / "config.json").write_text(json.dumps(asdict(cfg), indent=1, sort_keys=True))
    plot_counts(counts, dest / "class_counts.png")
    marker.write_text(json.dumps({"clips": len(clips), "beds": len(beds), "skipped": skipped, "counts": counts}))
    return CorpusResult(len(clips), len(beds), skipped, counts)
