"""The echo provider: honest word counts, stop and max_tokens, n choices, deterministic vectors."""
from __future__ import annotations

import math

import pytest

from app.http import make_session
from app.providers import echo


@pytest.mark.parametrize("text, request_, words, reason", [
    ("a b c", {}, ["a", "b", "c"], "stop"),
    ("a b c", {"max_tokens": 2}, ["a", "b"], "length"),
    ("a b c", {"max_completion_tokens": 1}, ["a"], "length"),
    ("a b STOP c", {"stop": "STOP"}, ["a", "b"], "stop"),
    ("a b c d", {"stop": ["x", "c"]}, ["a", "b"], "stop"),
    ("", {}, [], "stop"),
])
def test_answer(text, request_, words, reason):
    assert echo.answer(text, request_) == (words, reason)


def test_chat_input_uses_last_user_message_and_counts_all():
    req = {"messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "one"},
                        {"role": "assistant", "content": "two three"}, {"role": "user", "content": [
                            {"type": "text", "text": "four"}, {"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert echo.chat_input(req) == ("four", 6)


def test_vectors_are_deterministic_unit_vectors():
    v = echo.vector("hello", 16)
    assert v == echo.vector("hello", 16) and v != echo.vector("hello!", 16)
    assert len(v) == 16 and math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4)


def provider(**config):
    cfg = echo.EchoConfig().load(config)
    return echo.EchoProvider("echo-m", cfg, session=make_session(""))


def test_n_choices_and_usage():
    out = provider().chat({"messages": [{"role": "user", "content": "x y"}], "n": 3})
    assert [c["index"] for c in out["choices"]] == [0, 1, 2]
    assert out["usage"] == {"prompt_tokens": 2, "completion_tokens": 6, "total_tokens": 8}


def test_completions_with_prompt_list():
    out = provider().completions({"prompt": ["a b", "c"], "n": 2})
    assert [(c["index"], c["text"]) for c in out["choices"]] == [(0, "a b"), (1, "a b"), (2, "c"), (3, "c")]
    assert out["usage"]["prompt_tokens"] == 3 and out["usage"]["completion_tokens"] == 6


def test_completion_stream_text_and_usage():
    chunks = list(provider().completions_stream({"prompt": "a b c", "stream_options": {"include_usage": True}}))
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == "a b c"
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_embedding_dimensions_config():
    out = provider(dimensions=4).embeddings({"input": "hi there"})
    assert len(out["data"][0]["embedding"]) == 4 and out["usage"]["prompt_tokens"] == 2
