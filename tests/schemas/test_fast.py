"""The plain-chat fast path returns exactly what the schema returns, or defers to it."""
from __future__ import annotations

import copy

import pytest
from marshmallow import ValidationError

from app.schemas.chat import ChatRequest
from app.schemas.fast import plain_chat

MSGS = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]

ACCEPTED = [
    {"messages": MSGS},
    {"messages": MSGS, "temperature": 1, "top_p": 0.5, "n": 2, "max_tokens": 16},
    {"messages": MSGS, "temperature": 0, "max_completion_tokens": 1, "stream": True},
    {"messages": [{"role": "developer", "content": ""}], "stream": False, "user": "u-1", "seed": 7},
    {"messages": [{"role": "assistant", "content": "x"}], "metadata": {"a": [1, 2]}, "n": 128},
]

DEFERRED = [  # valid, but for the schema to handle
    {"messages": MSGS, "stop": "\n"},
    {"messages": MSGS, "stream": True, "stream_options": {"include_usage": True}},
    {"messages": MSGS, "tools": [{"type": "function", "function": {"name": "f"}}]},
    {"messages": MSGS, "tool_choice": "auto"},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
    {"messages": [{"role": "user", "content": "hi", "name": "bob"}]},
    {"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]},
    {"messages": MSGS, "temperature": float("nan")},  # NaN passes the schema's Range; not ours
]

INVALID = [
    {},
    {"messages": []},
    {"messages": "hi"},
    {"messages": [{"role": "robot", "content": "hi"}]},
    {"messages": [{"role": "user", "content": None}]},
    {"messages": [{"role": "tool", "content": "42"}]},
    {"messages": MSGS, "temperature": 2.5},
    {"messages": MSGS, "temperature": -0.1},
    {"messages": MSGS, "temperature": True},
    {"messages": MSGS, "temperature": "0.5"},
    {"messages": MSGS, "top_p": 1.5},
    {"messages": MSGS, "n": 0},
    {"messages": MSGS, "n": 129},
    {"messages": MSGS, "n": 1.0},
    {"messages": MSGS, "max_tokens": 0},
    {"messages": MSGS, "max_tokens": True},
    {"messages": MSGS, "stream": "yes"},
    {"messages": MSGS, "stream": 1},
]


@pytest.mark.parametrize("payload", ACCEPTED)
def test_accepted_payloads_match_the_schema_exactly(payload: dict) -> None:
    original = copy.deepcopy(payload)
    fast = plain_chat(payload)
    assert fast is not None
    full = ChatRequest().load(copy.deepcopy(payload))
    assert fast == full
    assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in full.items()}
    assert payload == original  # the input is not changed
    assert all(a is not b for a, b in zip(fast["messages"], payload["messages"]))


@pytest.mark.parametrize("payload", DEFERRED)
def test_other_valid_shapes_go_to_the_schema(payload: dict) -> None:
    assert plain_chat(payload) is None
    ChatRequest().load(payload)


@pytest.mark.parametrize("payload", INVALID)
def test_invalid_payloads_go_to_the_schema_for_its_error(payload: dict) -> None:
    assert plain_chat(payload) is None
    with pytest.raises(ValidationError):
        ChatRequest().load(payload)
