"""Plain-dict builders for the unified (OpenAI-shaped) responses and stream chunks."""
from __future__ import annotations

import time
import uuid
from typing import Any, Iterable


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage(prompt: int | None, completion: int | None, total: int | None = None) -> dict | None:
    """OpenAI usage; None only when the provider reported nothing at all."""
    if prompt is None and completion is None and total is None:
        return None
    if total is None:
        total = (prompt or 0) + (completion or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def chat_message(content: str | None, tool_calls: list[dict] | None = None) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def tool_call(call_id: str, name: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_response(
    *, model: str, choices: Iterable[dict], usage: dict | None, id: str | None = None,
    created: int | None = None,
) -> dict:
    return {
        "id": id or new_id("chatcmpl"),
        "object": "chat.completion",
        "created": created or now(),
        "model": model,
        "choices": list(choices),
        "usage": usage,
    }


def chat_choice(index: int, message: dict, finish_reason: str | None) -> dict:
    return {"index": index, "message": message, "finish_reason": finish_reason}


def chat_chunk(
    *, id: str, model: str, created: int, delta: dict, index: int = 0,
    finish_reason: str | None = None, usage: dict | None = None,
) -> dict:
    chunk: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def completions_response(
    *, model: str, choices: Iterable[dict], usage: dict | None, id: str | None = None,
    created: int | None = None,
) -> dict:
    return {
        "id": id or new_id("cmpl"),
        "object": "text_completion",
        "created": created or now(),
        "model": model,
        "choices": list(choices),
        "usage": usage,
    }


def completions_choice(index: int, text: str, finish_reason: str | None) -> dict:
    return {"index": index, "text": text, "finish_reason": finish_reason}


def completions_chunk(
    *, id: str, model: str, created: int, text: str, index: int = 0,
    finish_reason: str | None = None, usage: dict | None = None,
) -> dict:
    chunk: dict[str, Any] = {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": index, "text": text, "finish_reason": finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def embeddings_response(*, model: str, vectors: Iterable[list[float]], usage: dict | None) -> dict:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": usage,
    }
