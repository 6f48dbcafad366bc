"""Instruction data for the grounder, from manifests (SpotSound §2.3, §3.1).

Every (audio, positive query, windows, negative query) quadruplet becomes three examples:

* existence-yes: the positive query, answer ``Yes.``
* existence-no:  the negative query (a sound that is not in this recording), answer ``No.``
* grounding:     the positive query, answer every window of it (``From .. seconds to .. seconds, from ..``)

A manifest record gives one quadruplet per distinct event query; a record without events gives
existence-no examples only. Several manifests ("sources") are mixed by weight (the paper used
5k short clips : 10k long-form, i.e. weights 1 and 2).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from data_recipes.formats import ManifestRecord, iter_jsonl, resolve_audio

from .interleave import answer_for


@dataclass
class Example:
    audio: str            # absolute path of the audio file
    audio_id: str
    duration: float
    stage: str            # "exist" | "ground"
    query: str
    windows: list = field(default_factory=list)  # [(s, e)], empty for a negative query
    source: str = ""
    hint: list | None = None  # the scorer's candidate windows shown with the question, best first

    @property
    def answer(self) -> str:
        return answer_for(self.stage, self.windows)

    def to_dict(self) -> dict:
        return {"audio": self.audio, "audio_id": self.audio_id, "duration": self.duration, "stage": self.stage,
                "query": self.query, "windows": [list(w) for w in self.windows], "source": self.source,
                "answer": self.answer, "hint": None if self.hint is None else [list(w) for w in self.hint]}


@dataclass
class Quadruplet:
    record: ManifestRecord
    audio: str
    positive: str | None
    windows: list
    negative: str | None

    def examples(self, source: str = "", *, rng: random.Random | None = None,
                 paraphrase_prob: float = 0.0) -> list[Example]:
        """Existence-yes, grounding, existence-no. With ``paraphrase_prob`` each query is, with that
        probability, replaced by one of its *train* wordings from the corpus vocabulary ("dog
        barking" -> "a dog barks"); held-out test wordings are never used."""
        r = self.record

        def word(q: str) -> str:
            if rng is None or paraphrase_prob <= 0 or rng.random() >= paraphrase_prob:
                return q
            alts = train_wordings_of(q)
            return rng.choice(alts) if alts else q

        out = []
        if self.positive is not None:
            out.append(Example(self.audio, r.id, r.duration, "exist", word(self.positive), list(self.windows), source))
            out.append(Example(self.audio, r.id, r.duration, "ground", word(self.positive), list(self.windows), source))
        if self.negative is not None:
            out.append(Example(self.audio, r.id, r.duration, "exist", word(self.negative), [], source))
        return out


def attach_hints(examples: list[Example], candidates, *, drop: float = 0.0,
                 rng: random.Random | None = None) -> None:
    """Give every grounding example the scorer's candidate windows for its (audio, query) as its
    hint (``candidates(audio, query) -> [(s, e)]``), except a ``drop`` share left without one so
    the model also answers without a scorer. Examples are visited file by file, so a scorer that
    caches its last embedding encodes each file once."""
    rng = rng or random.Random(0)
    todo = sorted((e for e in examples if e.stage == "ground"), key=lambda e: e.audio)
    try:
        from tqdm import tqdm

        todo = tqdm(todo, desc="scorer hints", leave=False)
    except ImportError:
        pass
    for e in todo:
        e.hint = None if (drop > 0 and rng.random() < drop) else [tuple(map(float, w)) for w in candidates(e.audio, e.query)]


def train_wordings_of(query: str) -> list[str]:
    """Training paraphrases of a corpus query (empty for a query the vocabulary does not know)."""
    from data_recipes import vocabulary

    try:
        return list(vocabulary.train_wordings(query)) if vocabulary.lookup(query) else []
    except (KeyError, ValueError):
        return []


def _norm(q: str) -> str:
    return " ".join(q.lower().split())


def _negatives(positives: list[str], candidates: list[str], n: int, rng: random.Random) -> list[str]:
    """Negative queries for one recording: data_recipes' sampler (which also keeps out near-synonyms
    of the positives) when it is installed, otherwise any candidate that is not a positive."""
    try:
        from data_recipes.queries import sample_negative_queries
    except ImportError:
        sample_negative_queries = None
    if sample_negative_queries is not None:
        return list(sample_negative_queries(positives, candidates, n, rng))
    pos = {_norm(p) for p in positives}
    pool = [c for c in candidates if _norm(c) not in pos]
    return rng.sample(pool, min(n, len(pool)))


def quadruplets(manifest, *, split: str | None = "train", rng: random.Random,
                candidates: list[str] | None = None) -> list[Quadruplet]:
    """One quadruplet per (record, distinct event query), each with one sampled negative query.

    ``candidates`` (negative-query pool) defaults to every event query of the manifest.
    """
    manifest = Path(manifest)
    records = [r for r in iter_jsonl(manifest, ManifestRecord) if split is None or r.split == split]
    if not records:
        raise ValueError(f"{manifest}: no records" + (f" in split {split!r}" if split else ""))
    if candidates is None:
        candidates = sorted({e.query for r in records for e in r.events})
    out = []
    for r in records:
        audio = str(resolve_audio(manifest, r))
        positives = sorted({e.query for e in r.events})
        # sounds the background bed already holds are not absent either (synth manifests list them)
        present = positives + [q for q in ((r.meta or {}).get("bed_contains") or []) if isinstance(q, str)]
        negs = _negatives(present, candidates, max(1, len(positives)), rng)
        if not positives:
            out += [Quadruplet(r, audio, None, [], n) for n in negs]
            continue
        for i, q in enumerate(positives):
            out.append(Quadruplet(r, audio, q, r.windows(q), negs[i] if i < len(negs) else None))
    return out


def mix(pools: dict[str, list], weights: dict[str, float], total: int | None, rng: random.Random) -> list:
    """Draw from named pools in proportion to ``weights``.

    ``total`` items in all; ``None`` = the largest mix no pool has to repeat items for. A pool
    smaller than its share is repeated (whole passes, then a random part), never silently shrunk.
    """
    names = [n for n in pools if weights.get(n, 0) > 0]
    if not names:
        raise ValueError("mix: every source has weight 0")
    for n in names:
        if not pools[n]:
            raise ValueError(f"mix: source {n!r} is empty")
    wsum = sum(weights[n] for n in names)
    if total is None:
        total = int(min(len(pools[n]) * wsum / weights[n] for n in names))
    out = []
    for n in names:
        k = int(round(total * weights[n] / wsum))
        pool = list(pools[n])
        rng.shuffle(pool)
        reps, rest = divmod(k, len(pool))
        out += pool * reps + pool[:rest]
    rng.shuffle(out)
    return out
