"""The ``earmark`` predictor for ``earmark eval`` (entry point group ``earmark.predictors``):

    earmark eval QUERIES --manifest M --out DIR --predictor earmark \\
        --predictor-arg mode=fused --predictor-arg engine=hf [--predictor-arg grounder=PATH] \\
        [--predictor-arg scorer=PATH] [--predictor-arg absent_below=0.2 ...]

Any :class:`grounding.pipeline.PipelineConfig` field can be passed the same way. eval calls
``predict`` once per audio file with all its queries, so the audio is encoded once per file.

What a prediction holds: ``exists``/``windows`` (with confidence)/``score`` are the pipeline's
answer; ``status`` how the deciding text was read (an unparsable answer is ``unparsed`` and
scored as wrong); ``raw`` is the grounder's literal text in ``llm`` mode (existence answer, then
the localisation answer) and the final answer in the strict grammar in ``scorer``/``fused`` modes
(where the LLM's text alone is not the answer), so ``earmark eval --reparse`` re-reads each mode's
own decision. A query the pipeline refuses (e.g. empty) is written with status ``error`` and why.
"""
from __future__ import annotations

import time
from pathlib import Path

from data_recipes.formats import PredictionRecord, QueryRecord

from .api import Grounder
from .prompts import clean_query


def to_prediction(q: QueryRecord, answer, *, engine: str, ms: float) -> PredictionRecord:
    if answer.mode == "llm" and answer.raw.get("exist") is not None:
        raw = answer.raw["exist"] + ("" if answer.raw.get("ground") is None else " " + answer.raw["ground"])
    else:
        raw = answer.answer_text()
    return PredictionRecord.for_query(q, exists=bool(answer.exists),
                                      windows=[(w.start, w.end, w.confidence) for w in answer.windows],
                                      raw=raw, engine=engine, ms=ms, status=answer.status, score=answer.score)


class EarmarkPredictor:
    """Builds a :class:`~grounding.api.Grounder` (``grounder``/``scorer`` None = the embedded
    defaults) and answers eval's queries with it."""

    def __init__(self, mode: str = "auto", engine: str = "hf", grounder: str | None = None,
                 scorer: str | None = None, engine_options: dict | None = None, grounder_obj=None, **config):
        self.grounder = grounder_obj or Grounder.from_pretrained(grounder, scorer, mode=mode, engine=engine,
                                                                 engine_options=engine_options, **config)
        self.engine = f"earmark-{self.grounder.mode}" + (f"-{engine}" if self.grounder.mode != "scorer" else "")

    def describe(self) -> dict:
        """The models and settings answering (eval refuses to resume a run with other ones)."""
        return self.grounder.describe()

    def predict(self, audio_path: Path, queries: list[QueryRecord]) -> list[PredictionRecord]:
        out, ok = [], []
        for q in queries:
            try:
                clean_query(q.query)
                ok.append(q)
            except ValueError as exc:  # this query alone is wrong; the others are still answered
                out.append(PredictionRecord.for_query(q, exists=False, windows=[], raw=f"ValueError: {exc}",
                                                      engine=self.engine, status="error"))
        if ok:
            t0 = time.perf_counter()
            answers = self.grounder.ask_many(audio_path, [q.query for q in ok])
            ms = 1000.0 * (time.perf_counter() - t0) / len(ok)
            out += [to_prediction(q, a, engine=self.engine, ms=ms) for q, a in zip(ok, answers)]
        return out
