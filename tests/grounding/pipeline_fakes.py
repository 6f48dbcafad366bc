"""Test doubles for the pipeline: a scripted engine (answers chosen per stage and query, so any
answer shape can be fed in) and a scorer whose frame curves are set by hand but whose events,
candidates and existence come from the real ``contrastive.scorer.Scorer`` code."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contrastive.scorer import AudioEmbedding, FrameScores, Scorer
from grounding.engines.base import AudioPrefix, Generation


class ScriptedEngine:
    """Answers from ``script[(stage, query)]`` (a string); decodes each question to find them.

    Records what it was asked: ``prepared`` (prefix lengths), ``asked`` ((stage, query) pairs),
    ``questions`` (the decoded question texts)."""

    name = "scripted"

    def __init__(self, tokenizer, script: dict, *, p_yes: float | None = None, max_positions: int | None = None):
        self.tok, self.script, self.p_yes, self.max_positions = tokenizer, script, p_yes, max_positions
        self.prepared: list[int] = []
        self.asked: list[tuple[str, str]] = []
        self.questions: list[str] = []

    def prepare(self, prefix_embeds) -> AudioPrefix:
        self.prepared.append(int(prefix_embeds.shape[0]))
        return AudioPrefix(prefix_embeds)

    def generate(self, prefix, continuations, *, max_new_tokens, score_ids=None):
        out = []
        for c in continuations:
            text = self.tok.decode(c)
            self.questions.append(text)
            stage = "exist" if "Answer only" in text else "ground"
            query = text.split("The query is:", 1)[1].split("\n")[0].strip()
            if "<|im_end|>" in query:
                query = query.split("<|im_end|>")[0].strip()
            self.asked.append((stage, query))
            ans = self.script.get((stage, query), "")
            lp = None
            if score_ids is not None and self.p_yes is not None:
                lp = [float(np.log(self.p_yes)), float(np.log1p(-self.p_yes))]
            out.append(Generation(ans, [], lp))
        return out

    def close(self):
        pass


class CurveScorer(Scorer):
    """A Scorer whose frame probabilities are 0.9 inside ``truth[phrase]`` windows, 0.02 elsewhere."""

    def __init__(self, truth: dict, fps: float = 25.0):
        self.truth, self.fps, self.sr = truth, float(fps), 16000
        self.window, self.hop, self.median_seconds, self.threshold = 10.0, 5.0, 0.28, 0.5
        self.exists_median_seconds = 0.28
        self.batch_windows, self.num_threads, self._cache = 8, None, {}
        self.existence_calibration = None
        self.candidate_rel = 0.5  # what Scorer.__init__ would set (it is not called)
        self.embedded = 0

    def embed(self, audio, *, name=None, progress=False):
        if isinstance(audio, AudioEmbedding):
            return audio
        self.embedded += 1
        if isinstance(audio, (str, Path)):
            from data_recipes.audio import audio_info

            dur = audio_info(audio).duration
        else:
            dur = len(np.asarray(audio)) / self.sr
        return AudioEmbedding(None, None, self.fps, dur, name or "audio")

    def frame_scores(self, audio, phrases):
        emb = self.embed(audio)
        T = max(1, int(emb.duration * self.fps))
        t = (np.arange(T) + 0.5) / self.fps
        rows = []
        for p in phrases:
            r = np.full(T, 0.02, np.float32)
            for s, e in self.truth.get(p, []):
                r[(t >= s) & (t < e)] = 0.9
            rows.append(r)
        return FrameScores(list(phrases), np.stack(rows), self.fps, emb.duration)


def make_tiny_scorer(path):
    """A random tiny scorer checkpoint of the real class (its existence probabilities are ~0:
    the initial logit bias is -10)."""
    import torch

    from contrastive.config import AudioConfig, ModelConfig
    from contrastive.model import create_model

    torch.manual_seed(0)
    model, _ = create_model(ModelConfig(audio=AudioConfig(channels=(8, 16, 32), width=32), embed_dim=32,
                                        dense_layers=1, dense_heads=2))
    model.save_pretrained(path)
    return path
