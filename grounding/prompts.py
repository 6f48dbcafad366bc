"""What the grounder is asked and how it answers.

Sequence order (SpotSound §2.2): ``[interleaved audio][instruction][query]`` — the audio comes
first so that one audio prefix, and its KV cache, serves every query and both stages.
The backbone's chat template wraps it when the tokenizer has one (the audio still opens the user
turn); otherwise a plain layout is used.

Answers (DESIGN.md): ``Yes.`` / ``No.`` for existence; ``From 12.40 seconds to 13.90 seconds.`` for
grounding, several windows joined by ``, from``. Times in answers always have two decimals, while
the timestamps interleaved with the audio are written as short as their granularity allows
(``12`` for 1 s and 2 s steps, ``12.4`` for 0.2 s steps — see :func:`grounding.interleave.timestamp_text`);
both read as the same number, which is what the model has to copy.

Parsing is the shared reader of :mod:`data_recipes.answers` (strict grammar first, lenient second,
never raises): every answer gets a status so that what could not be parsed is counted, not hidden.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

STAGES = ("exist", "ground")

EXISTENCE_INSTRUCTION = (
    "Above is an audio recording, given as a stream of audio features with a timestamp before each step. "
    "Is the sound described by the query heard anywhere in this recording? "
    "Answer only \"Yes.\" or \"No.\" The query is:"
)
GROUNDING_INSTRUCTION = (
    "Above is an audio recording, given as a stream of audio features with a timestamp before each step. "
    "Find every time window in which the sound described by the query is heard. "
    "Answer with the start and end of each window in seconds, in the form "
    "\"From <start> seconds to <end> seconds.\", separating several windows with \", from\". The query is:"
)
INSTRUCTIONS = {"exist": EXISTENCE_INSTRUCTION, "ground": GROUNDING_INSTRUCTION}

# queries longer than this are cut (with a warning): a 10 kB "query" is not a sound description
MAX_QUERY_CHARS = 300

_MARK_AUDIO, _MARK_TEXT = "\x00AUDIO\x00", "\x00TEXT\x00"


@dataclass(frozen=True)
class PromptFormat:
    """The fixed text around the audio and the question.

    sequence = before_audio + <interleaved audio> + after_audio + instruction + " " + query
               + query_suffix + after_query + answer + answer_end

    ``query_suffix`` is ``<|query|>`` for backbones that add the query's sentence embedding as a
    soft token there (the embedded default), empty otherwise.
    """

    before_audio: str = ""
    after_audio: str = "\n"
    after_query: str = "\nAnswer: "
    answer_end: str = "<|endoftext|>"
    query_suffix: str = ""

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "PromptFormat":
        """ChatML-style wrapping from the tokenizer's chat template (``<|audio_bos|>``/``<|audio_eos|>``
        around the audio when the vocabulary has them); the plain layout when there is no template."""
        eos = tokenizer.eos_token or ""
        has = set(tokenizer.get_vocab())
        bos_a, eos_a = ("<|audio_bos|>", "<|audio_eos|>") if "<|audio_bos|>" in has else ("", "")
        if not getattr(tokenizer, "chat_template", None):
            return cls(before_audio=bos_a, after_audio=eos_a + "\n", after_query="\nAnswer: ", answer_end=eos)
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": _MARK_AUDIO + _MARK_TEXT}],
                                                 tokenize=False, add_generation_prompt=True)
        if _MARK_AUDIO not in rendered or _MARK_TEXT not in rendered:
            raise ValueError("the tokenizer's chat template does not render plain string content; "
                             "cannot place the audio prefix")
        before, rest = rendered.split(_MARK_AUDIO, 1)
        _, after = rest.split(_MARK_TEXT, 1)
        end = "<|im_end|>" if "<|im_end|>" in has else eos
        return cls(before_audio=before + bos_a, after_audio=eos_a + "\n", after_query=after, answer_end=end)

    def question(self, stage: str, query: str, hint=None) -> str:
        """Everything after the audio up to where the answer starts; ``hint`` (the scorer's candidate
        windows, best first) is written after the query when given (:func:`format_hint`)."""
        if stage not in INSTRUCTIONS:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        h = "" if hint is None else "\n" + format_hint(hint)
        return f"{self.after_audio}{INSTRUCTIONS[stage]} {clean_query(query)}{self.query_suffix}{h}{self.after_query}"

    def to_dict(self) -> dict:
        return {"before_audio": self.before_audio, "after_audio": self.after_audio,
                "after_query": self.after_query, "answer_end": self.answer_end, "query_suffix": self.query_suffix}


def clean_query(query: str) -> str:
    """Whitespace-normalised query; empty -> ValueError; over MAX_QUERY_CHARS -> cut with a warning."""
    if not isinstance(query, str):
        raise ValueError(f"query must be a string, got {type(query).__name__}")
    q = " ".join(query.split())
    if not q:
        raise ValueError("empty query: describe the sound to look for")
    if len(q) > MAX_QUERY_CHARS:
        log.warning("query of %d characters cut to %d: %r...", len(q), MAX_QUERY_CHARS, q[:40])
        q = q[:MAX_QUERY_CHARS].rsplit(" ", 1)[0] or q[:MAX_QUERY_CHARS]
    return q


# ---- answers ------------------------------------------------------------------------------
def format_existence(exists: bool) -> str:
    return "Yes." if exists else "No."


def format_windows(windows) -> str:
    """``From 12.40 seconds to 13.90 seconds, from 20.00 seconds to 21.50 seconds.`` (time order;
    the grammar of :func:`data_recipes.answers.format_answer` without its leading ``Yes.``)."""
    from data_recipes.answers import format_answer

    ws = sorted((float(s), float(e)) for s, e in windows)
    if not ws:
        raise ValueError("format_windows: no windows (a negative query is answered by the existence stage)")
    return format_answer(True, ws)[len("Yes. "):]


HINT_INTRO = "A sound detector's candidate windows, best first:"


def format_hint(windows) -> str:
    """The scorer's candidates as the grounder reads them (SpotSound's "hint the LLM" option).

    Each candidate is spelled exactly as an answer window (``From 1.20 seconds to 3.44 seconds.``),
    in the scorer's order rather than time order, so that the answer can be a short-range copy of
    the candidate(s) the audio supports; a small LM learns such a copy far sooner than reading the
    time off the interleaved timestamps. No candidate reads ``none``.
    """
    ws = [(float(w[0]), float(w[1])) for w in windows]
    if not ws:
        return f"{HINT_INTRO} none."
    return HINT_INTRO + " " + " ".join(format_windows([w]) for w in ws)


@dataclass
class ParsedWindows:
    windows: list[tuple[float, float]]
    status: str  # strict | lenient | repaired | unparsed


def parse_windows(text, duration: float | None = None) -> ParsedWindows:
    """Windows from a grounding answer, read by the shared reader (:mod:`data_recipes.answers`,
    which eval scores with). ``repaired``: some window was clipped to ``[0, duration]``, swapped or
    dropped; ``unparsed``: no window could be read. Never raises."""
    from data_recipes.answers import parse_answer

    p = parse_answer(text, duration=duration)
    if not p.windows:
        return ParsedWindows([], "unparsed")
    return ParsedWindows([tuple(w) for w in p.windows], p.status)


def parse_existence(text) -> tuple[bool | None, str]:
    """(exists, status) of an existence answer: ``strict`` for exactly ``Yes.``/``No.``, the shared
    reader's verdict otherwise, ``(None, "unparsed")`` when it says neither. Never raises."""
    from data_recipes.answers import parse_answer

    p = parse_answer(text)
    if p.exists is None:
        return None, "unparsed"
    return p.exists, p.status
