"""A fast path for the common plain chat request; anything else goes to the marshmallow schema.

Marshmallow spends a few hundred microseconds per chat request building and walking field
objects. Most requests are plain: text messages and a few sampling numbers. `plain_chat`
accepts exactly those, returning what `ChatRequest().load` would return, and returns None for
anything it does not fully understand (tools, content parts, stop, stream_options, invalid
values...) so that the schema validates it and words any error as before.
"""
from __future__ import annotations

from typing import Any

from app.schemas.chat import ChatRequest

# Fields the chat schema declares that this fast path does not check: the schema must see them.
_SCHEMA_ONLY = frozenset(ChatRequest().fields) - {
    "messages", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stream",
}
# Roles whose plain-text message has no further rule (a tool message needs tool_call_id).
_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})
_FLOAT_RANGES = {"temperature": 2.0, "top_p": 1.0}
_INT_MIN_MAX = {"n": (1, 128), "max_tokens": (1, None), "max_completion_tokens": (1, None)}


def _plain_message(m: Any) -> bool:
    # {"role": "user", "content": "text"} and nothing else
    return (
        type(m) is dict and len(m) == 2 and type(m.get("content")) is str
        and m.get("role") in _PLAIN_ROLES
    )


def plain_chat(payload: dict) -> dict | None:
    """The validated request for a plain chat payload, or None to use the full schema."""
    messages = payload.get("messages")
    if type(messages) is not list or not messages or not all(_plain_message(m) for m in messages):
        return None
    out = dict(payload)
    for key, value in payload.items():
        if key in _SCHEMA_ONLY:
            return None
        if key in _FLOAT_RANGES:
            if type(value) not in (int, float) or not 0 <= value <= _FLOAT_RANGES[key]:
                return None
            out[key] = float(value)  # the schema's Float field returns floats
        elif key in _INT_MIN_MAX:
            low, high = _INT_MIN_MAX[key]
            if type(value) is not int or value < low or (high is not None and value > high):
                return None
        elif key == "stream" and type(value) is not bool:
            return None
    out["messages"] = [dict(m) for m in messages]  # fresh dicts, as the schema's load makes
    return out
