"""The shared translation helpers: exact refusal wording, list handling, reply and chunk shapes."""
from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.providers import translate as t
from app.schemas import shapes
from app.schemas.chat import ChatChunk
from app.schemas.completions import CompletionsChunk, CompletionsResponse


def test_invalid_names_the_parameter_and_provider():
    err = t.invalid("top_k", "must be a whole number", "Acme")
    assert (err.message, err.param, err.status) == ("'top_k' must be a whole number with the Acme provider.", "top_k", 400)


def test_check_keys_refuses_the_first_unknown_key():
    t.check_keys({"prompt": "x", "n": 1}, {"prompt", "n"}, "Acme")
    with pytest.raises(InvalidRequest) as info:
        t.check_keys({"prompt": "x", "logprobs": True}, {"prompt"}, "Acme")
    assert info.value.message == "'logprobs' is not supported with the Acme provider." and info.value.param == "logprobs"


def test_reject_unknown_allows_framing_keys_only():
    t.reject_unknown({"model": "m", "stream": True, "stream_options": {}, "prompt": "x"}, {"prompt"}, "Acme")
    with pytest.raises(InvalidRequest) as info:
        t.reject_unknown({"prompt": "x", "user": "u"}, {"prompt"}, "Acme")
    assert info.value.message == "The parameter 'user' is not supported by the Acme provider."


def test_one_candidate_uses_the_callers_wording():
    t.one_candidate({}, "Acme", "must be 1")
    t.one_candidate({"n": 1}, "Acme", "must be 1")
    with pytest.raises(InvalidRequest) as info:
        t.one_candidate({"n": 2}, "Acme", "must be 1 (one candidate)")
    assert info.value.message == "'n' must be 1 (one candidate) with the Acme provider." and info.value.param == "n"


@pytest.mark.parametrize("prompt", ["hi", ["hi"]])
def test_the_one_prompt_is_unwrapped(prompt):
    assert t.one_prompt({"prompt": prompt}, "Acme", "must be one") == "hi"
    assert t.single_prompt({"prompt": prompt}, "Acme") == "hi"


def test_several_prompts_are_refused_in_each_wording():
    with pytest.raises(InvalidRequest, match="^'prompt' must be one with the Acme provider.$"):
        t.one_prompt({"prompt": ["a", "b"]}, "Acme", "must be one")
    with pytest.raises(InvalidRequest, match="^The Acme provider takes one prompt per request; 'prompt' has 2.$"):
        t.single_prompt({"prompt": ["a", "b"]}, "Acme")


def test_request_readers():
    assert t.max_tokens({"max_tokens": 5, "max_completion_tokens": 9}) == 9
    assert t.max_tokens({"max_tokens": 5}) == 5 and t.max_tokens({}) is None
    assert t.as_list("a") == ["a"] and t.as_list(["a", "b"]) == ["a", "b"]
    assert t.include_usage({"stream_options": {"include_usage": True}}) is True
    assert t.include_usage({"stream_options": None}) is False and t.include_usage({}) is False
    assert t.text_of([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]) == "ab"
    assert t.text_of(None) == ""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    assert t.parameters_of({"name": "f", "parameters": schema}) is schema
    assert t.parameters_of({"name": "f"}) == {"type": "object", "properties": {}}


def test_chat_as_completions_keeps_every_choice():
    chat = shapes.chat_response(model="m", id="x1", usage=shapes.usage(3, 2), choices=[
        shapes.chat_choice(0, shapes.chat_message("Paris."), "stop"),
        shapes.chat_choice(1, shapes.chat_message(None), "length"),
    ])
    out = t.chat_as_completions(chat)
    CompletionsResponse().load(out)
    assert (out["id"], out["model"], out["usage"]) == ("x1", "m", chat["usage"])
    assert out["choices"] == [{"index": 0, "text": "Paris.", "finish_reason": "stop"},
                              {"index": 1, "text": "", "finish_reason": "length"}]


@pytest.mark.parametrize("kind, schema", [("chat", ChatChunk), ("completions", CompletionsChunk)])
def test_stream_chunks_share_one_id(kind, schema):
    stream = t.StreamChunks("m", kind, include_usage=True)
    first, last = stream._chunk({"content": "Pa"}), stream._chunk({}, "stop")
    usage = stream._usage_chunk(shapes.usage(1, 2))
    for chunk in (first, last, usage):
        schema().load(chunk)
    assert first["id"] == last["id"] == usage["id"] and first["id"].startswith("chatcmpl" if kind == "chat" else "cmpl")
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 3
    text = first["choices"][0]["delta"]["content"] if kind == "chat" else first["choices"][0]["text"]
    assert text == "Pa" and last["choices"][0]["finish_reason"] == "stop"
