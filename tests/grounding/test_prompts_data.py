"""Answer grammar (format and strict/lenient parsing that never raises), prompt wrapping, and
instruction data from manifests (quadruplets -> three examples, several windows, mixing)."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grounding.data import mix, quadruplets
from grounding.prompts import PromptFormat, clean_query, format_windows, parse_existence, parse_windows


def test_answer_grammar_round_trip():
    text = format_windows([(20.0, 21.5), (12.4, 13.9)])
    assert text == "From 12.40 seconds to 13.90 seconds, from 20.00 seconds to 21.50 seconds."
    p = parse_windows(text)
    assert p.status == "strict" and p.windows == [(12.4, 13.9), (20.0, 21.5)]
    assert parse_windows("the dog barks 3.5 - 4 s and again 7 to 9.25", duration=60).windows == [(3.5, 4.0), (7.0, 9.25)]
    assert parse_windows("From 5.00 seconds to 2.00 seconds.").status == "repaired"
    assert parse_windows("From 50.00 seconds to 90.00 seconds.", duration=60).windows == [(50.0, 60.0)]
    assert parse_windows("I cannot tell.").status == "unparsed"
    assert parse_existence("Yes.") == (True, "strict") and parse_existence("No.") == (False, "strict")
    assert parse_existence("no, it is not there") == (False, "lenient")
    assert parse_existence("Maybe?") == (None, "unparsed")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_parsers_never_raise(text):
    parse_windows(text, duration=30.0)
    parse_existence(text)


def test_queries_and_prompt_format(qwen2_tok):
    with pytest.raises(ValueError, match="empty query"):
        clean_query("   ")
    assert len(clean_query("dog " * 5000)) <= 300
    fmt = PromptFormat.for_tokenizer(qwen2_tok)
    q = fmt.question("ground", "  dog   barking ")
    assert fmt.before_audio.startswith("<|im_start|>user\n") and fmt.before_audio.endswith("<|audio_bos|>")
    assert q.startswith("<|audio_eos|>\n") and "The query is: dog barking<|im_end|>\n<|im_start|>assistant\n" in q
    with pytest.raises(ValueError, match="stage"):
        fmt.question("find", "dog")


def test_quadruplets_make_three_examples(toy_manifest):
    quads = quadruplets(toy_manifest, rng=random.Random(0))
    # 5 recordings with events: 1 + 1 + 1 (two windows) + 2 + 1 distinct queries; 1 without events
    assert len([q for q in quads if q.positive]) == 6
    two = [q for q in quads if q.record.id == "c2"][0]
    assert two.windows == [(0.5, 1.2), (3.0, 3.8)]
    exs = two.examples()
    assert [(e.stage, e.answer) for e in exs] == [
        ("exist", "Yes."), ("ground", "From 0.50 seconds to 1.20 seconds, from 3.00 seconds to 3.80 seconds."),
        ("exist", "No.")]
    for q in quads:
        if q.negative is not None:
            assert q.negative not in {e.query for e in q.record.events}
    assert [q for q in quads if q.record.id == "c4"][0].positive is None  # no events: existence-no only


def test_mix_ratios():
    rng = random.Random(0)
    out = mix({"short": list(range(100)), "long": list(range(1000, 1030))}, {"short": 1, "long": 2}, 90, rng)
    assert sum(x >= 1000 for x in out) == 60 and sum(x < 1000 for x in out) == 30
    assert len(set(x for x in out if x >= 1000)) == 30  # the small source is repeated whole
    auto = mix({"a": list(range(10)), "b": list(range(100, 140))}, {"a": 1, "b": 1}, None, rng)
    assert len(auto) == 20
    with pytest.raises(ValueError, match="empty"):
        mix({"a": []}, {"a": 1}, 5, rng)


def test_paraphrase_augmentation_uses_train_wordings_only():
    from data_recipes import vocabulary
    from data_recipes.formats import Event, ManifestRecord

    from grounding.data import Quadruplet

    rec = ManifestRecord("r", "a.flac", 10.0, [Event("dog growling", 1.0, 2.0)])
    q = Quadruplet(rec, "/x/a.flac", "dog growling", [(1.0, 2.0)], "pig oinking")
    rng = random.Random(0)
    seen = set()
    for _ in range(30):
        exs = q.examples(rng=rng, paraphrase_prob=1.0)
        seen |= {e.query for e in exs[:2]}
        assert exs[2].query in vocabulary.train_wordings("pig oinking")
    assert seen <= set(vocabulary.train_wordings("dog growling")) and len(seen) > 1
    assert not seen & set(vocabulary.test_wordings("dog growling"))
    assert [e.query for e in q.examples(rng=rng, paraphrase_prob=0.0)] == ["dog growling", "dog growling", "pig oinking"]


def test_hint_text_and_where_it_goes():
    from grounding.prompts import HINT_INTRO, format_hint

    assert format_hint([(9.72, 11.12), (1.924, 4.126)]) == (
        f"{HINT_INTRO} From 9.72 seconds to 11.12 seconds. From 1.92 seconds to 4.13 seconds.")  # best first
    assert format_hint([]) == f"{HINT_INTRO} none."
    fmt = PromptFormat(query_suffix="<|query|>")
    plain = fmt.question("ground", "dog barking")
    assert plain == fmt.question("ground", "dog barking", None) and HINT_INTRO not in plain
    hinted = fmt.question("ground", "dog barking", [(1.0, 2.5)])
    # the query (and its soft token) first, then the hint, then where the answer starts
    assert hinted == plain.replace("<|query|>\nAnswer: ",
                                   f"<|query|>\n{HINT_INTRO} From 1.00 seconds to 2.50 seconds.\nAnswer: ")


def test_attach_hints_gives_grounding_questions_their_candidates(toy_manifest):
    from grounding.data import attach_hints

    exs = [ex for q in quadruplets(toy_manifest, split=None, rng=random.Random(0)) for ex in q.examples()]
    calls = []

    def cands(audio, query):
        calls.append((audio, query))
        return [(len(query), len(query) + 1.5)]

    attach_hints(exs, cands)
    ground = [e for e in exs if e.stage == "ground"]
    assert ground and all(e.hint == [(len(e.query), len(e.query) + 1.5)] for e in ground)
    assert all(e.hint is None for e in exs if e.stage == "exist")
    assert sorted(calls) == sorted((e.audio, e.query) for e in ground)
    assert ground[0].to_dict()["hint"] == [[len(ground[0].query), len(ground[0].query) + 1.5]]
    attach_hints(exs, cands, drop=1.0)
    assert all(e.hint is None for e in exs)
