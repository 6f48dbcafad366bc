"""The grounder alone as an eval predictor (SpotSound's two stages, no scorer): stage 1 asks
existence for every query of a file, stage 2 asks for windows only where stage 1 said yes.

    earmark eval QUERIES --manifest M --out DIR \\
        --predictor grounding.evaluate:GrounderPredictor --predictor-arg path=CHECKPOINT

Status: stage 1's reading (strict / lenient / unparsed), downgraded to stage 2's when that one
needed the lenient reader or repairs, and ``no-windows`` when stage 1 said yes but no window could
be read from stage 2 (existence still counts; IoU is 0).

A plain reference path for measuring checkpoints (no KV-cache reuse, no scorer fusion — the
``earmark`` predictor of :mod:`grounding.pipeline` does those); the audio is encoded once per file
and each stage runs as one left-padded batch.
"""
from __future__ import annotations

import time
from pathlib import Path

from data_recipes.formats import PredictionRecord, QueryRecord


class GrounderPredictor:
    def __init__(self, path: str, *, max_new_tokens_exist: int = 6, max_new_tokens_ground: int = 96,
                 batch_size: int = 8) -> None:
        from .backbones import load_backbone
        from .interleave import Interleaver
        from .prompts import PromptFormat

        self.bb = load_backbone(path)
        self.bb.model.eval()
        s = self.bb.settings
        fmt = PromptFormat(**s["prompt_format"]) if s.get("prompt_format") else self.bb.prompt_format()
        self.il = Interleaver(self.bb.tokenizer, granularity=float(s.get("granularity", 1.0)),
                              fps=self.bb.frames_per_second, prompt_format=fmt,
                              placeholder_id=self.bb.audio_token_id, interleave=bool(s.get("interleave", True)))
        self.max_exist, self.max_ground, self.batch_size = max_new_tokens_exist, max_new_tokens_ground, batch_size

    def _ask(self, audio, stage: str, queries: list[str], max_new: int) -> list[str]:
        """``audio(query)``: the audio embeddings that query's prompt starts with."""
        from .interleave import collate

        out = []
        for i in range(0, len(queries), self.batch_size):
            chunk = queries[i:i + self.batch_size]
            embs = [audio(q) for q in chunk]
            seqs = [self.il.sequence(e.shape[0], stage, q) for e, q in zip(embs, chunk)]
            b = collate(seqs, embs, self.bb, padding_side="left")
            ids = self.bb.generate(b.inputs_embeds, b.attention_mask, max_new_tokens=max_new)
            out += self.bb.decode(ids)
        return out

    def predict(self, audio_path: Path, queries: list[QueryRecord]) -> list[PredictionRecord]:
        from data_recipes.audio import audio_info, load_audio

        import torch

        from .prompts import clean_query, parse_existence, parse_windows

        t0 = time.perf_counter()
        duration = audio_info(audio_path).duration
        feats = self.bb.audio_features(load_audio(audio_path, sr=16000))
        embedded: dict = {}  # one projection per file, or per query when the audio depends on it

        def emb(query: str):
            key = query if self.bb.query_conditioned_audio else None
            if key not in embedded:
                with torch.no_grad():
                    embedded[key] = self.bb.project_audio(feats, query)
            return embedded[key]

        texts, bad = {}, {}
        for q in queries:
            try:
                texts[q.id] = clean_query(q.query)
            except ValueError as exc:
                bad[q.id] = str(exc)
        ok = [q for q in queries if q.id in texts]
        exist_raw = dict(zip([q.id for q in ok], self._ask(emb, "exist", [texts[q.id] for q in ok], self.max_exist)))
        said = {qid: parse_existence(raw) for qid, raw in exist_raw.items()}
        yes = [q for q in ok if said[q.id][0]]
        ground_raw = dict(zip([q.id for q in yes],
                              self._ask(emb, "ground", [texts[q.id] for q in yes], self.max_ground)))
        ms = (time.perf_counter() - t0) * 1000 / max(1, len(queries))
        preds = []
        for q in queries:
            if q.id in bad:
                preds.append(PredictionRecord.for_query(q, exists=False, raw="", engine="grounder", ms=ms,
                                                        status="error"))
                continue
            exists, status = said[q.id]
            raw = exist_raw[q.id]
            windows = []
            if exists:
                pw = parse_windows(ground_raw[q.id], duration)
                raw += " " + ground_raw[q.id]
                windows = [(s, e, 1.0) for s, e in pw.windows]
                if pw.status == "unparsed":
                    # stage 1 was read (its yes counts) but no window could be: IoU 0, counted apart
                    status = "no-windows"
                elif pw.status != "strict":
                    status = pw.status
            preds.append(PredictionRecord.for_query(q, exists=bool(exists), windows=windows, raw=raw,
                                                    engine="grounder", ms=ms, status=status))
        return preds
