"""The wide corpus: thousands more clips from Debian's sound packages, labelled by an AudioSet tagger.

The narrow corpus (:mod:`.corpus`) labels files by reviewed path rules, so it only uses files whose
paths say what they are. This recipe takes every other audio file of the same packages plus the
packages in :data:`WIDE_PACKAGES`, cuts it into single-event clips exactly as the narrow recipe
does (:func:`.clips.clean_event`), and lets an AudioSet tagger (YAMNet, found through the
``earmark.taggers`` entry point so that this package does not import ``contrastive``) name each clip:

* a clip is kept when one *labelable* AudioSet class (not a parent class, room acoustic or genre:
  ``data_recipes/audioset_wordings.tsv``) is confident (mean probability over the clip's patches
  >= ``min_confidence``) and steady (the top labelable class in >= ``min_steady`` of them);
* the words of the file's path are a second opinion that can veto: when they name AudioSet
  classes and neither the label nor any of the tagger's top five is among them (``path_veto``);
* the phrase is one of the class's plain wordings ("Bark" -> "a dog barks" / "barking"), chosen
  per recording, so one class reaches training under several phrasings.

Speech and music are capped (``speech_cap`` / ``music_cap`` recordings) so that the spoken letters
of klettres and the words of ktuberling do not swamp the mix. Splits are by source recording with
the narrow recipe's rule (:func:`.corpus.assign_splits`). Output::

    DEST/wide/<split>/<package>/<name>.flac   DEST/wide.jsonl   (the tagger-labelled clips)
    DEST/clips.jsonl, DEST/beds.jsonl          narrow + wide clips, narrow beds (DEST/clips and
                                               DEST/beds link to the narrow corpus)
    DEST/tags.jsonl    every tagged piece (resume point; decisions are re-made from it)
    DEST/catalog.tsv   every candidate piece: label, confidence, outcome, licence
    DEST/review.png, DEST/review.tsv   100 random tagger-labelled clips for a by-eye label review

Every wide clip's ``meta`` holds ``label`` (the AudioSet class), ``label_source`` ("tagger"),
``confidence``, ``steady``, ``top`` (the tagger's five best classes), ``path`` and ``recordings``;
narrow clips get ``label_source: "path"``.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .audio import AudioError, load_audio, save_audio
from .clips import clean_event, peak_normalise
from .corpus import CorpusConfig, CorpusResult, Source, _clip_record, _order_key, _progress, _safe_name, \
    assign_splits, plot_counts
from .corpus_labels import AUDIO_SUFFIXES, PACKAGES, label_for
from .formats import write_jsonl

__all__ = ["WIDE_PACKAGES", "ALL_PACKAGES", "WideConfig", "load_wordings", "load_tagger", "scan_candidates",
           "decide", "path_veto", "prepare_wide_corpus"]

log = logging.getLogger(__name__)

# Packages the narrow corpus does not use. Other Debian sound packages are kept for independent
# evaluation: do not add them here (tests/data_recipes/test_corpus_wide.py checks the list).
# freepats (Gravis .pat patches) and openclonk-data (sounds packed in C4Group .ocg) have no file
# this recipe can decode; they stay listed so a decoder added later picks them up.
WIDE_PACKAGES = [
    "asterisk-moh-opsound-wav", "blinken", "boswars-data", "colobot-common-sounds", "crrcsim-data",
    "deepin-sound-theme", "extremetuxracer-data", "fillets-ng-data", "freedroidrpg-data", "freepats",
    "frozen-bubble-data", "gamine-data", "granatier", "hedgewars-data", "hydrogen-drumkits-effects", "kapman",
    "kbounce", "klettres-data", "knavalbattle", "ktuberling-data", "lomiri-sounds", "naev-data", "openclonk-data",
    "openssn-data", "pingus-data", "puredata-doc", "ri-li-data", "sound-icons", "supercollider-common",
    "supertux-data", "tuxtype-data", "warmux-data", "warzone2100-data", "xmoto-data", "yaru-theme-sound",
]
ALL_PACKAGES = list(PACKAGES) + WIDE_PACKAGES
TAGGER_GROUP = "earmark.taggers"
WORDINGS_FILE = Path(__file__).with_name("audioset_wordings.tsv")


@dataclass
class WideConfig:
    """How the wide recipe cuts, labels and caps. JSON-serialisable."""

    seed: int = 0
    sr: int = 16000
    tagger: str = "yamnet"
    min_confidence: float = 0.3     # mean tagger probability of the label over the clip
    min_steady: float = 0.6         # share of the clip's patches whose top labelable class is the label
    stage_confidence: float = 0.15  # pieces below this are not even staged (cannot become clips)
    max_source_seconds: float = 120.0  # longer files (music tracks) are read up to here
    min_clip: float = 0.1
    max_clip: float = 7.5
    max_pieces: int = 3
    cap_per_class: int = 60         # recordings per AudioSet class at most
    speech_cap: int = 150           # recordings of the speech group at most
    music_cap: int = 300            # recordings of the music group at most
    # keep an event label only when the file's name or folder uses one of its words (or of the
    # tagger's top five): precision over quantity (the tagger alone is right on 31 % of events)
    events_need_path: bool = False
    workers: int = 2

    def __post_init__(self):
        for name in ("min_confidence", "min_steady", "stage_confidence"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"WideConfig.{name} must be in [0, 1], got {v}")
        if self.stage_confidence > self.min_confidence:
            raise ValueError(f"WideConfig.stage_confidence ({self.stage_confidence}) must be <= min_confidence "
                             f"({self.min_confidence})")
        for name in ("cap_per_class", "speech_cap", "music_cap", "workers", "max_pieces"):
            if getattr(self, name) < 1:
                raise ValueError(f"WideConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.min_clip < self.max_clip:
            raise ValueError(f"WideConfig.min_clip ({self.min_clip}) must be in (0, max_clip={self.max_clip})")
        if not 0 < self.max_source_seconds <= 3600:
            raise ValueError(f"WideConfig.max_source_seconds must be in (0, 3600], got {self.max_source_seconds}")


# ------------------------------------------------------------------------- labels and words
@lru_cache(maxsize=None)
def load_wordings(path: str | None = None) -> dict[str, tuple[str, tuple[str, ...]]]:
    """{AudioSet class: (group, wordings)} from ``audioset_wordings.tsv`` (generic classes: no wordings)."""
    out = {}
    for i, line in enumerate(Path(path or WORDINGS_FILE).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or parts[1] not in ("event", "speech", "music", "generic"):
            raise ValueError(f"{path or WORDINGS_FILE}:{i}: expected 'class<TAB>group<TAB>wordings', got {line!r}")
        words = tuple(w.strip() for w in parts[2].split(";") if w.strip())
        if parts[1] != "generic" and not words:
            raise ValueError(f"{path or WORDINGS_FILE}:{i}: class {parts[0]!r} has no wordings")
        out[parts[0]] = (parts[1], words)
    return out


_STOP = {"the", "and", "with", "etc", "sound", "sounds", "sfx", "snd", "effect", "effects", "audio", "data",
         "share", "usr", "games", "game", "wav", "ogg", "flac", "noise", "small", "large", "inside", "outside",
         "room", "someone", "something", "person", "being", "into", "from", "low", "high", "frequency", "sample",
         "samples", "default", "theme", "music", "mus", "new", "old", "one", "two", "off", "out", "change"}


def _stem(w: str) -> str:
    for suf in ("ing", "es", "ed", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[:-len(suf)]
    return w


def _words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3 and w not in _STOP}


@lru_cache(maxsize=None)
def _name_words() -> dict[str, frozenset[str]]:
    """Words of each labelable class's AudioSet name: what a file name must use to name that class."""
    return {c: frozenset(_words(c)) for c, (g, _) in load_wordings().items() if g != "generic"}


def path_opinion(path: str) -> set[str]:
    """The labelable AudioSet classes whose names the file's name or folder uses."""
    p = Path(path)
    words = _words(p.stem + " " + p.parent.name)
    return {c for c, cw in _name_words().items() if words & cw}


def path_agrees(path: str, label: str, top: list[str]) -> bool:
    """True when the file's name or folder shares a word with the label (name, wordings) or ``top``."""
    words = load_wordings()
    p = Path(path)
    return bool(_words(p.stem + " " + p.parent.name) & _words(" ".join([label, *words[label][1], *top])))


def path_veto(path: str, label: str, top: list[str]) -> bool:
    """True when the path names sounds and shares no word with the label (its name and wordings)
    or the tagger's ``top`` classes. Speech and music are never vetoed: a voice line's or a tune's
    file name says what is said or played, not what sound it is."""
    words = load_wordings()
    if words[label][0] in ("speech", "music") or not path_opinion(path):
        return False
    return not path_agrees(path, label, top)


def decide(mean: dict[str, float], steady: dict[str, float], cfg: WideConfig) -> tuple[str | None, str]:
    """(label, reason) of one tagged piece from its mean probabilities and steadiness per class.

    Only labelable classes compete; the label is the most probable of them. ``None`` with the
    reason when it is not confident or not steady enough."""
    words = load_wordings()
    cands = {c: p for c, p in mean.items() if words.get(c, ("generic",))[0] != "generic"}
    if not cands:
        return None, "no labelable class"
    best = max(sorted(cands), key=lambda c: cands[c])
    if cands[best] < cfg.min_confidence:
        return None, f"not confident ({best} {cands[best]:.2f} < {cfg.min_confidence})"
    if steady.get(best, 0.0) < cfg.min_steady:
        return None, f"not steady ({best} top in {steady.get(best, 0.0):.0%} of patches < {cfg.min_steady:.0%})"
    return best, "ok"


def load_tagger(name: str):
    """The tagger registered under ``name`` in the ``earmark.taggers`` entry points (or named
    ``module:Class``), instantiated. A tagger has ``class_names`` and maps a mono wave at
    ``sample_rate`` (16 kHz) to probabilities [patches, classes]."""
    from importlib.metadata import entry_points

    if ":" in name:
        import importlib

        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)()
    found = [ep for ep in entry_points(group=TAGGER_GROUP) if ep.name == name]
    if not found:
        names = sorted(ep.name for ep in entry_points(group=TAGGER_GROUP))
        raise LookupError(f"tagger {name!r} is not installed (entry points {TAGGER_GROUP}: {names or 'none'})")
    return found[0].load()()


# --------------------------------------------------------------------------------- scan
def scan_candidates(x_roots: list[str | os.PathLike], packages: list[str] | None = None) -> list[Source]:
    """Every audio file of ``packages`` (default :data:`ALL_PACKAGES`) that the narrow recipe does not
    label, under any of ``x_roots`` (each holding ``<package>/...``). Exact duplicates (same bytes,
    here or among the narrow corpus's files) are dropped; sorted, so the result is the same everywhere."""
    from .corpus import _display_path

    packages = list(packages or ALL_PACKAGES)
    seen: set[str] = set()
    out: list[Source] = []
    files, missing = [], []
    for pkg in sorted(set(packages)):
        roots = [Path(r) / pkg for r in x_roots if (Path(r) / pkg).is_dir()]
        if not roots:
            missing.append(pkg)
            continue
        root = roots[0]
        for dp, _, fns in os.walk(root):
            files += [(pkg, root, Path(dp) / fn) for fn in fns if fn.lower().endswith(AUDIO_SUFFIXES)]
    if missing:
        log.warning("%d package(s) not unpacked under %s, skipped: %s", len(missing), [str(r) for r in x_roots],
                    ", ".join(missing))
    files.sort(key=lambda t: (t[0], str(t[2])))
    # narrow-labelled files first, so their bytes are never taken again as wide candidates
    labelled = [(pkg, root, f) for pkg, root, f in files if label_for(pkg, _display_path(root, f)) is not None]
    for pkg, root, f in labelled:
        seen.add(hashlib.md5(f.read_bytes()).hexdigest())
    for pkg, root, f in files:
        disp = _display_path(root, f)
        if label_for(pkg, disp) is not None:
            continue
        h = hashlib.md5(f.read_bytes()).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        out.append(Source("", pkg, disp, str(f), recording=f"{pkg}:{disp}"))
    return out


# ------------------------------------------------------------------------------- tagging
_TAGGER = None


def _init_worker(name: str) -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker process
    global _TAGGER
    _TAGGER = load_tagger(name)


def _piece_stats(probs: np.ndarray, names: list[str], labelable: np.ndarray) -> tuple[list, dict, dict]:
    mean = probs.mean(axis=0)
    top = np.argsort(-mean)[:5]
    masked = np.where(labelable[None], probs, -1.0)
    winners = collections.Counter(masked.argmax(axis=1).tolist())
    best_lab = np.argsort(-np.where(labelable, mean, -1.0))[:5]
    means = {names[i]: round(float(mean[i]), 4) for i in set(top.tolist()) | set(best_lab.tolist())}
    steady = {names[i]: round(winners.get(int(i), 0) / len(probs), 4) for i in best_lab}
    return [[names[i], round(float(mean[i]), 4)] for i in top], means, steady


def _tag_job(job: tuple[Source, WideConfig, str]) -> dict:
    """One file -> its pieces with tagger statistics; confident-enough pieces are staged as FLAC."""
    src, cfg, stage = job
    row = {"recording": src.recording, "package": src.package, "path": src.path, "file": src.file, "pieces": []}
    try:
        y = load_audio(src.file, cfg.sr)
    except (AudioError, OSError) as exc:
        return dict(row, skip=str(exc))
    y = y[:int(cfg.max_source_seconds * cfg.sr)]
    if y.size == 0 or float(np.max(np.abs(y))) < 1e-4:
        return dict(row, skip="silent (peak below -80 dBFS)")
    names = list(_TAGGER.class_names)
    words = load_wordings()
    labelable = np.array([words.get(n, ("generic",))[0] != "generic" for n in names])
    pieces = clean_event(y, cfg.sr, min_dur=cfg.min_clip, max_dur=cfg.max_clip, max_pieces=cfg.max_pieces)
    base = _safe_name(Path(src.path).stem) + "-" + _order_key(0, src.recording)[:6]
    for k, (a, b) in enumerate(pieces):
        clip = peak_normalise(y[a:b], -1.0)
        top, means, steady = _piece_stats(_TAGGER(clip), names, labelable)
        piece = {"k": k, "segment": [round(a / cfg.sr, 3), round(b / cfg.sr, 3)], "top": top, "mean": means,
                 "steady": steady, "staged": None}
        if max((p for c, p in means.items() if labelable[names.index(c)]), default=0.0) >= cfg.stage_confidence:
            rel = f"{_safe_name(src.package)}/{base}-{k}.flac"
            save_audio(Path(stage) / rel, clip, cfg.sr)
            piece["staged"] = rel
        row["pieces"].append(piece)
    if not pieces:
        row["skip"] = f"no clean segment of at least {cfg.min_clip} s"
    return row


def tag_sources(sources: list[Source], dest: Path, cfg: WideConfig) -> list[dict]:
    """Tag every source not yet in ``dest/tags.jsonl`` (appending as it goes); all rows, sorted."""
    tags = dest / "tags.jsonl"
    done = {}
    if tags.is_file():
        text = tags.read_text()
        if text and not text.endswith("\n"):  # a line cut by a crash: drop it, that file is tagged again
            text = text[:text.rfind("\n") + 1]
            tags.write_text(text)
        for line in text.splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{tags}: corrupt line ({exc}); delete it to tag that file again") from None
            done[r["recording"]] = r
    todo = [s for s in sources if s.recording not in done]
    stage = dest / "_stage"
    stage.mkdir(parents=True, exist_ok=True)
    jobs = [(s, cfg, str(stage)) for s in todo]
    with open(tags, "a") as f:
        if cfg.workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(cfg.workers, initializer=_init_worker, initargs=(cfg.tagger,)) as ex:
                for r in _progress(ex.map(_tag_job, jobs, chunksize=2), len(jobs), "tag"):
                    f.write(json.dumps(r) + "\n")
                    f.flush()
                    done[r["recording"]] = r
        else:
            _init_worker(cfg.tagger)
            for j in _progress(jobs, len(jobs), "tag"):
                r = _tag_job(j)
                f.write(json.dumps(r) + "\n")
                f.flush()
                done[r["recording"]] = r
    wanted = {s.recording for s in sources}
    return [done[k] for k in sorted(done) if k in wanted]


# ------------------------------------------------------------------------------ decisions
def _accepted(rows: list[dict], cfg: WideConfig) -> tuple[list[tuple[dict, dict, str]], list[tuple]]:
    """(accepted (row, piece, label) in row order, catalog rows of every piece)."""
    acc, catalog = [], []
    for r in rows:
        if r.get("skip") and not r["pieces"]:
            catalog.append(("-", r["package"], r["path"], "-", "-", "skipped: " + r["skip"]))
            continue
        for p in r["pieces"]:
            label, why = decide(p["mean"], p["steady"], cfg)
            if label is not None and path_veto(r["path"], label, [c for c, _ in p["top"]]):
                label, why = None, f"path veto ({label} vs path words of {Path(r['path']).name})"
            if (label is not None and cfg.events_need_path and load_wordings()[label][0] == "event"
                    and not path_agrees(r["path"], label, [c for c, _ in p["top"]])):
                label, why = None, f"path does not confirm ({label} vs {Path(r['path']).name})"
            if label is not None and p["staged"] is None:
                label, why = None, "not staged"
            conf = p["mean"].get(label, 0.0) if label else 0.0
            catalog.append((label or "-", r["package"], r["path"], str(p["k"]), f"{conf:.2f}", why))
            if label is not None:
                acc.append((r, p, label))
    return acc, catalog


def _cap_groups(acc: list[tuple[dict, dict, str]], cfg: WideConfig) -> list[tuple[dict, dict, str]]:
    """Keep at most speech_cap / music_cap recordings of the speech / music groups (seeded order)."""
    words = load_wordings()
    caps = {"speech": cfg.speech_cap, "music": cfg.music_cap}
    recs_by_group: dict[str, set[str]] = collections.defaultdict(set)
    for r, _, label in acc:
        recs_by_group[words[label][0]].add(r["recording"])
    keep: dict[str, set[str]] = {}
    for g, cap in caps.items():
        order = sorted(recs_by_group.get(g, ()), key=lambda rec: _order_key(cfg.seed, rec))
        keep[g] = set(order[:cap])
    return [(r, p, lab) for r, p, lab in acc if words[lab][0] not in caps or r["recording"] in keep[words[lab][0]]]


def _wording(label: str, recording: str, seed: int) -> str:
    ws = load_wordings()[label][1]
    return ws[int(_order_key(seed, f"{label}|{recording}")[:8], 16) % len(ws)]


def _read_dicts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _link(dest: Path, name: str, target: Path) -> None:
    link = dest / name
    if link.is_symlink() or link.exists():
        if link.is_symlink() and link.resolve() == target.resolve():
            return
        if link.is_symlink():
            link.unlink()
        else:
            raise FileExistsError(f"{link}: exists and is not a link to {target}")
    link.symlink_to(target.resolve(), target_is_directory=True)


def prepare_wide_corpus(narrow: str | os.PathLike, x_roots: list[str | os.PathLike], dest: str | os.PathLike,
                        cfg: WideConfig | None = None, *, force: bool = False,
                        sources: list[Source] | None = None) -> CorpusResult:
    """Tag, decide, split and write the wide corpus (module doc). ``narrow`` is a finished narrow
    corpus (its clips and beds are part of the result); ``x_roots`` hold the unpacked packages.
    Resumable: tagging appends to ``dest/tags.jsonl`` and a re-run tags only what is missing.
    A ``.completed`` marker makes a re-run a no-op unless ``force``."""
    cfg = cfg or WideConfig()
    narrow, dest = Path(narrow), Path(dest)
    marker = dest / ".completed"
    if marker.is_file() and not force:
        info = json.loads(marker.read_text())
        return CorpusResult(info["clips"], info["beds"], info.get("skipped", []), info["counts"])
    for name in ("clips.jsonl", "beds.jsonl"):
        if not (narrow / name).is_file():
            raise FileNotFoundError(f"{narrow / name}: not a finished narrow corpus (run `earmark data corpus` first)")
    dest.mkdir(parents=True, exist_ok=True)
    if sources is None:
        sources = scan_candidates(x_roots)
    rows = tag_sources(sources, dest, cfg)
    acc, catalog = _accepted(rows, cfg)
    acc = _cap_groups(acc, cfg)
    split_src = [Source(label, r["package"], r["path"], r["file"], recording=r["recording"]) for r, _, label in acc]
    split_of, kept = assign_splits(split_src, CorpusConfig(seed=cfg.seed, cap_per_class=cfg.cap_per_class,
                                                           synth_sources=False))
    kept_keys = {(s.recording, s.label) for s in kept}
    if (dest / "wide").exists():
        shutil.rmtree(dest / "wide")  # decisions are cheap to redo from tags.jsonl
    records = []
    outcome: dict[tuple[str, str], str] = {}
    for r, p, label in acc:
        if (r["recording"], label) not in kept_keys:
            outcome[(r["path"], str(p["k"]))] = "capped (cap_per_class)"
            continue
        split = split_of[r["recording"]]
        y = load_audio(dest / "_stage" / p["staged"], cfg.sr)
        base = Path(p["staged"]).stem
        source = "tagger+path" if path_agrees(r["path"], label, [c for c, _ in p["top"]]) else "tagger"
        meta = {"label": label, "label_source": source, "confidence": p["mean"][label],
                "steady": p["steady"].get(label, 0.0), "top": p["top"], "path": r["path"],
                "recordings": [r["recording"]], "segment": p["segment"], "package": r["package"]}
        rec = _clip_record(y, CorpusConfig(sr=cfg.sr, synth_sources=False), f"wide-{base}",
                           f"wide/{split}/{_safe_name(r['package'])}/{base}.flac",
                           _wording(label, r["recording"], cfg.seed), split, r["package"], meta)
        if rec is None:
            outcome[(r["path"], str(p["k"]))] = "nothing above the relabel floor"
            continue
        (dest / rec.audio).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dest / "_stage" / p["staged"], dest / rec.audio)
        records.append(rec.to_dict())
        outcome[(r["path"], str(p["k"]))] = f"clip ({split})"
    records.sort(key=lambda d: d["id"])
    write_jsonl(dest / "wide.jsonl", records)
    from .corpus_licenses import license_for

    lic_root = {pkg: str(Path(x)) for x in reversed([Path(x) for x in x_roots]) for pkg in ALL_PACKAGES
                if (Path(x) / pkg).is_dir()}
    lines = ["label\tpackage\tpath\tpiece\tconfidence\toutcome\tlicense"]
    for label, pkg, path, k, conf, why in sorted(catalog):
        o = outcome.get((path, k), "rejected: " + why if label == "-" else why)
        lines.append("\t".join([label, pkg, path, k, conf, o,
                                license_for(lic_root[pkg], pkg, path) if pkg in lic_root else "-"]))
    (dest / "catalog.tsv").write_text("\n".join(lines) + "\n")
    narrow_clips = [dict(d, meta=dict(d.get("meta", {}), label_source="path")) for d in _read_dicts(narrow / "clips.jsonl")]
    _link(dest, "clips", narrow / "clips")
    _link(dest, "beds", narrow / "beds")
    beds = _read_dicts(narrow / "beds.jsonl")
    write_jsonl(dest / "clips.jsonl", narrow_clips + records)
    write_jsonl(dest / "beds.jsonl", beds)
    counts: dict[str, dict[str, int]] = collections.defaultdict(collections.Counter)
    for d in narrow_clips + records:
        counts[d["events"][0]["query"]][d["split"]] += 1
    counts = {q: dict(c) for q, c in counts.items()}
    plot_counts({q: c for q, c in counts.items() if q in {d["events"][0]["query"] for d in records}},
                dest / "class_counts.png")
    from .corpus_review import write_review

    write_review(dest, records, n=100, seed=cfg.seed)
    (dest / "config.json").write_text(json.dumps(asdict(cfg), indent=1, sort_keys=True))
    skipped = [f"{r['file']}\t{r['skip']}" for r in rows if r.get("skip")]
    info = {"clips": len(narrow_clips) + len(records), "beds": len(beds), "skipped": skipped, "counts": counts,
            "wide_clips": len(records), "packages": sorted({d["source"] for d in records}),
            "phrases": sorted({d["events"][0]["query"] for d in records}),
            "classes": sorted({d["meta"]["label"] for d in records})}
    marker.write_text(json.dumps(info))
    return CorpusResult(info["clips"], info["beds"], skipped, counts)
