"""Anthropic: chat and completions through the Messages API (`POST /v1/messages`)."""
from __future__ import annotations

import json
from functools import partial
from typing import Any, Iterator, Mapping

from app.config_fields import Secret, Text, Url
from app.errors import GatewayError, UpstreamError
from app.providers.anthropic_stream import StreamTranslator, finish_reason, to_usage
from app.providers.base import BaseProvider, Chunk, ProviderConfig, map_status
from app.providers.translate import (
    as_list, chat_as_completions, check_keys, include_usage, invalid, max_tokens, one_candidate, one_prompt,
    parameters_of, text_of,
)
from app.schemas import shapes

ANTHROPIC_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
# `max_tokens` is required by the Messages API; this is what we send when the client sets none.
DEFAULT_MAX_TOKENS = 4096
LABEL = "Anthropic"

# Unified keys this module translates, and Anthropic-native keys sent on unchanged. Anything
# else is refused by name: the Messages API rejects unknown fields, and dropping one silently
# would change what the client asked for.
HANDLED = {
    "messages", "prompt", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens",
    "stop", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls", "user",
}
PASS_THROUGH = {"top_k", "metadata", "thinking", "service_tier"}

class AnthropicConfig(ProviderConfig):
    anthropic_api_key = Secret(required=True)
    anthropic_version = Text(load_default=ANTHROPIC_VERSION)
    anthropic_api_base = Url()


# ----- translation (pure) ------------------------------------------------------------------


_invalid = partial(invalid, label=LABEL)


def content_blocks(content: Any) -> list[dict]:
    """OpenAI content (string or parts) → Anthropic blocks.

    Writes `{"type":"text","text"}` and `{"type":"image","source":{"type":"base64","media_type",
    "data"}}` or `{"type":"image","source":{"type":"url","url"}}`.
    """
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        if part["type"] == "text":
            if part["text"]:
                blocks.append({"type": "text", "text": part["text"]})
        elif part["type"] == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media, _, data = url[5:].partition(";base64,")
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            elif url.startswith(("http://", "https://")):
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
            else:
                raise _invalid("messages", "needs image_url to be a data: or http(s) URL")
        else:
            raise _invalid("messages", f"content parts of type {part['type']!r} are not supported")
    return blocks


def _tool_use(call: Mapping[str, Any]) -> dict:
    """OpenAI assistant tool call → `{"type":"tool_use","id","name","input":{…}}`."""
    try:
        args = json.loads(call["function"]["arguments"] or "{}")
    except ValueError:
        raise _invalid("messages", "needs tool_calls arguments that are a JSON object") from None
    if not isinstance(args, dict):
        raise _invalid("messages", "needs tool_calls arguments that are a JSON object")
    return {"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": args}


def to_messages(messages: list[Mapping[str, Any]]) -> tuple[str | None, list[dict]]:
    """OpenAI messages → (`system`, Anthropic `messages` with only user/assistant turns).

    System and developer messages become the top-level `system` string. Tool results become
    `{"type":"tool_result","tool_use_id","content"}` blocks in a user turn, and consecutive
    turns of one role are merged, so parallel tool results share the user turn right after the
    assistant's `tool_use` blocks, as the API requires.
    """
    system: list[str] = []
    turns: list[dict] = []
    for m in messages:
        role = m["role"]
        if role in ("system", "developer"):
            system.append(text_of(m.get("content")))
            continue
        if role == "tool":
            role = "user"
            blocks = [{"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": text_of(m.get("content"))}]
        elif role == "assistant":
            blocks = content_blocks(m.get("content")) + [_tool_use(c) for c in m.get("tool_calls") or ()]
        else:
            blocks = content_blocks(m.get("content"))
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if not turn["content"]:
            raise _invalid("messages", f"has an empty {turn['role']} message, which is not accepted")
        if len(turn["content"]) == 1 and turn["content"][0]["type"] == "text":
            turn["content"] = turn["content"][0]["text"]
    if not turns:
        raise _invalid("messages", "needs at least one user message")
    return ("\n\n".join(s for s in system if s) or None), turns


def to_tools(tools: list[Mapping[str, Any]]) -> list[dict]:
    """OpenAI function tools → `[{"name","description","input_schema"}]`."""
    out = []
    for tool in tools:
        fn = tool["function"]
        item = {"name": fn["name"], "input_schema": parameters_of(fn)}
        if fn.get("description"):
            item["description"] = fn["description"]
        out.append(item)
    return out


def to_tool_choice(choice: Any, parallel: Any) -> dict | None:
    """`auto|required|none|{function}` → `{"type":"auto"|"any"|"none"|"tool","name"?}`."""
    if choice is None and parallel is not False:
        return None
    if isinstance(choice, dict):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        out = {"type": {"required": "any", "none": "none"}.get(choice or "auto", "auto")}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified chat or completions request → Messages body.

    Temperature: the unified range is OpenAI's 0–2 and Anthropic's is 0–1, so it is halved.
    """
    check_keys(request, HANDLED | PASS_THROUGH, LABEL)
    one_candidate(request, LABEL, "must be 1 (Claude returns one candidate)")
    if "prompt" in request:
        system, messages = None, [{"role": "user", "content": one_prompt(request, LABEL, "must be a single string")}]
    else:
        system, messages = to_messages(request["messages"])
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens(request) or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = system
    if "temperature" in request:
        body["temperature"] = round(request["temperature"] / 2, 6)
    if "top_p" in request:
        body["top_p"] = request["top_p"]
    if "top_k" in request:
        top_k = request["top_k"]
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise _invalid("top_k", "must be a non-negative integer")
        body["top_k"] = top_k
    if request.get("stop"):
        body["stop_sequences"] = as_list(request["stop"])
    if request.get("tools"):
        body["tools"] = to_tools(request["tools"])
    if request.get("tool_choice") == "required" and not request.get("tools"):
        raise _invalid("tool_choice", "'required' needs tools")
    tool_choice = to_tool_choice(request.get("tool_choice"), request.get("parallel_tool_calls"))
    if tool_choice and body.get("tools"):
        body["tool_choice"] = tool_choice
    if request.get("user"):
        body["metadata"] = {"user_id": request["user"]}
    for key in ("metadata", "thinking", "service_tier"):
        if key in request:
            body[key] = request[key]
    if request.get("stream"):
        body["stream"] = True
    return body


def from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """`{"id","model","content":[text|tool_use blocks],"stop_reason","usage"}` → chat response."""
    blocks = body.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [
        shapes.tool_call(b["id"], b["name"], json.dumps(b.get("input") or {}, separators=(",", ":")))
        for b in blocks if b.get("type") == "tool_use"
    ]
    message = shapes.chat_message(text if text or not calls else None, calls)
    return shapes.chat_response(
        model=body.get("model") or model, id=body.get("id"),
        choices=[shapes.chat_choice(0, message, finish_reason(body.get("stop_reason")))],
        usage=to_usage(body.get("usage")),
    )


def completions_from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """The same Messages reply, as a text completion."""
    return chat_as_completions(from_upstream(body, model))


# Error types of `{"type":"error","error":{"type","message"}}` → the HTTP status they come with.
ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}


def error_type(body: Any) -> str | None:
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("type") if isinstance(err, dict) and isinstance(err.get("type"), str) else None


# ----- transport ---------------------------------------------------------------------------


class AnthropicProvider(BaseProvider):
    name = "anthropic"
    display_name = LABEL
    config_schema = AnthropicConfig
    base_url_key = "anthropic_api_base"
    default_base_url = ANTHROPIC_BASE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = f"{self.base_url(self.config)}/v1/messages"

    def headers(self) -> dict[str, str]:
        return {
            "x-api-key": self.config["anthropic_api_key"],
            "anthropic-version": self.config.get("anthropic_version") or ANTHROPIC_VERSION,
        }

    def upstream_error(self, resp: Any) -> GatewayError:
        # Anthropic's `error.type` is the code; it sends no `param`.
        body, detail = self.error_detail(resp)
        return map_status(resp.status_code, detail, LABEL, resp.headers, code=error_type(body))

    def stream_error(self, data: Any) -> GatewayError:
        """`event: error` after the 200: map its error type as if it had been the status."""
        kind = error_type(data) or "api_error"
        detail = self.redact(self.error_message(data) or kind)
        return map_status(ERROR_STATUS.get(kind, 500), f"{detail} (mid-stream)", LABEL, code=kind)

    def chat(self, request: dict) -> dict:
        return from_upstream(self.post_json(self.url, to_upstream(request, self.model)), self.model)

    def completions(self, request: dict) -> dict:
        return completions_from_upstream(self.post_json(self.url, to_upstream(request, self.model)), self.model)

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        return self._stream(request, "chat")

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        return self._stream(request, "completions")

    def _stream(self, request: dict, kind: str) -> Iterator[Chunk]:
        body = to_upstream({**request, "stream": True}, self.model)
        translator = StreamTranslator(self.model, kind, include_usage(request))
        resp = self.post_stream(self.url, body, headers={"Accept": "text/event-stream"})
        for event in self.iter_sse(resp):
            if not event.data:
                continue
            data = self.parse_event(event.data)
            name = event.event if event.event and event.event != "message" else data.get("type")
            if name == "error":
                raise self.stream_error(data)
            yield from translator.feed(name, data)
            if translator.done:
                return
        raise UpstreamError(f"The {LABEL} provider's stream ended without message_stop.")
