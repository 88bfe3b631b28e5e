"""Pure translation between the unified chat shape and Bedrock's Converse / ConverseStream API."""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from app.errors import InvalidRequest, UpstreamError
from app.schemas import shapes

LABEL = "Amazon Bedrock"

# Converse `stopReason` (bedrock-runtime service-2.json StopReason) → OpenAI finish_reason.
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "stop",
    "malformed_tool_use": "stop",
}

# Keys of the unified chat request this provider honours; anything else is refused by name.
CHAT_KEYS = {
    "messages", "tools", "tool_choice", "temperature", "top_p", "top_k", "n", "max_tokens",
    "max_completion_tokens", "stop", "stream", "stream_options",
}

_DATA_URL = re.compile(r"^data:image/(?P<fmt>png|jpeg|jpg|gif|webp);base64,(?P<data>.+)$", re.S)


def refuse_unknown(request: Mapping[str, Any], known: set[str]) -> None:
    """Parameters Bedrock cannot honour are errors, never silently dropped."""
    for key in request:
        if key not in known:
            raise InvalidRequest(
                f"The parameter '{key}' is not supported by the {LABEL} provider.", param=key
            )


def check_n(request: Mapping[str, Any]) -> None:
    if request.get("n", 1) != 1:
        raise InvalidRequest(f"n > 1 is not supported by the {LABEL} provider.", param="n")


def bedrock_temperature(value: float) -> float:
    """Unified temperature is 0-2 (OpenAI); Bedrock models take 0-1, so the scale is halved."""
    return round(value / 2, 6)


def stop_list(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def max_tokens(request: Mapping[str, Any]) -> int | None:
    return request.get("max_completion_tokens") or request.get("max_tokens")


def _image(part: Mapping[str, Any]) -> dict:
    # OpenAI: {"type":"image_url","image_url":{"url":"data:image/png;base64,..."}}
    # Converse: {"image":{"format":"png","source":{"bytes":<raw bytes>}}} (botocore base64-encodes)
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image if isinstance(image, str) else None
    match = _DATA_URL.match(url or "")
    if not match:
        raise InvalidRequest(
            f"The {LABEL} provider takes images only as base64 data URLs (data:image/png;base64,...).",
            param="messages",
        )
    try:
        raw = base64.b64decode(match.group("data"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("An image data URL is not valid base64.", param="messages") from None
    fmt = "jpeg" if match.group("fmt") == "jpg" else match.group("fmt")
    return {"image": {"format": fmt, "source": {"bytes": raw}}}


def content_blocks(content: Any) -> list[dict]:
    """Unified content (string or parts) → Converse ContentBlocks `[{"text": ...}|{"image": ...}]`."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks = []
    for part in content:
        if part["type"] == "text":
            if part["text"]:
                blocks.append({"text": part["text"]})
        elif part["type"] == "image_url":
            blocks.append(_image(part))
        else:
            raise InvalidRequest(
                f"Content parts of type '{part['type']}' are not supported by the {LABEL} provider.",
                param="messages",
            )
    return blocks


def _tool_use(call: Mapping[str, Any]) -> dict:
    # {"toolUse": {"toolUseId": "...", "name": "...", "input": {...}}}
    try:
        args = json.loads(call["function"]["arguments"] or "{}")
    except ValueError:
        raise InvalidRequest("A tool call's arguments are not valid JSON.", param="messages") from None
    if not isinstance(args, dict):
        raise InvalidRequest("A tool call's arguments must be a JSON object.", param="messages")
    return {"toolUse": {"toolUseId": call["id"], "name": call["function"]["name"], "input": args}}


def _tool_result(message: Mapping[str, Any]) -> dict:
    # {"toolResult": {"toolUseId": "...", "content": [{"text": "..."}], "status": "success"}}
    content = message.get("content")
    text = content if isinstance(content, str) else "".join(
        p.get("text", "") for p in content or () if p.get("type") == "text"
    )
    return {"toolResult": {"toolUseId": message["tool_call_id"], "content": [{"text": text}]}}


def to_messages(messages: list[Mapping[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Unified messages → (Converse `system`, Converse `messages`), same-role turns merged."""
    system: list[dict] = []
    turns: list[dict] = []
    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            system.extend(content_blocks(message.get("content")))
            continue
        if role == "tool":
            role, blocks = "user", [_tool_result(message)]
        elif role == "assistant":
            blocks = content_blocks(message.get("content"))
            blocks += [_tool_use(c) for c in message.get("tool_calls") or ()]
        else:
            blocks = content_blocks(message.get("content"))
        if not blocks:
            continue
        # Converse wants user and assistant turns to alternate; consecutive tool results and
        # a user message that follows them belong to one user turn.
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest(f"The {LABEL} provider needs at least one user message.", param="messages")
    return system, turns


def tool_config(request: Mapping[str, Any], turns: list[dict]) -> dict | None:
    """OpenAI tools/tool_choice → `{"tools":[{"toolSpec":{...}}],"toolChoice":{"auto":{}}|...}`."""
    tools, choice = request.get("tools"), request.get("tool_choice")
    uses_tools = any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"])
    if not tools:
        if uses_tools:
            raise InvalidRequest(
                f"The {LABEL} provider needs 'tools' when the conversation has tool calls.",
                param="tools",
            )
        return None
    if choice == "none":
        if uses_tools:
            raise InvalidRequest(
                f"tool_choice 'none' cannot be honoured by the {LABEL} provider once the "
                "conversation has tool calls.", param="tool_choice",
            )
        return None
    specs = []
    for tool in tools:
        fn = tool["function"]
        spec: dict[str, Any] = {
            "name": fn["name"],
            "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def top_k_field(family: str, top_k: Any) -> dict:
    """`top_k` has no Converse field; it goes in additionalModelRequestFields, named per family."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidRequest("top_k must be a whole number of at least 1.", param="top_k")
    if family in ("anthropic", "mistral"):
        return {"top_k": top_k}
    if family == "nova":
        return {"inferenceConfig": {"topK": top_k}}
    if family == "cohere":
        return {"k": top_k}
    raise InvalidRequest(f"top_k is not supported by this {LABEL} model.", param="top_k")


def to_converse(request: Mapping[str, Any], model_id: str, family: str) -> dict:
    """Unified chat request → boto3 `converse(**kwargs)` / `converse_stream(**kwargs)` arguments."""
    refuse_unknown(request, CHAT_KEYS)
    check_n(request)
    system, turns = to_messages(request["messages"])
    kwargs: dict[str, Any] = {"modelId": model_id, "messages": turns}
    if system:
        kwargs["system"] = system
    inference: dict[str, Any] = {}
    if max_tokens(request):
        inference["maxTokens"] = max_tokens(request)
    if request.get("temperature") is not None:
        inference["temperature"] = bedrock_temperature(request["temperature"])
    if request.get("top_p") is not None:
        inference["topP"] = request["top_p"]
    if request.get("stop") is not None:
        inference["stopSequences"] = stop_list(request["stop"])
    if inference:
        kwargs["inferenceConfig"] = inference
    if request.get("top_k") is not None:
        kwargs["additionalModelRequestFields"] = top_k_field(family, request["top_k"])
    tools = tool_config(request, turns)
    if tools:
        kwargs["toolConfig"] = tools
    return kwargs


def converse_usage(usage: Mapping[str, Any] | None) -> dict | None:
    # {"inputTokens": 15, "outputTokens": 5, "totalTokens": 20, "cacheReadInputTokens"?: ...}
    if not usage:
        return None
    return shapes.usage(usage.get("inputTokens"), usage.get("outputTokens"), usage.get("totalTokens"))


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return STOP_REASONS.get(stop_reason, "stop")


def from_converse(reply: Mapping[str, Any], model: str) -> dict:
    """Converse reply → unified chat response.

    Reads `{"output":{"message":{"role":"assistant","content":[{"text"}|{"toolUse":{...}}]}},
    "stopReason":"end_turn","usage":{"inputTokens","outputTokens","totalTokens"}}`.
    """
    blocks = ((reply.get("output") or {}).get("message") or {}).get("content") or []
    texts = [b["text"] for b in blocks if "text" in b]
    calls = [
        shapes.tool_call(b["toolUse"]["toolUseId"], b["toolUse"]["name"],
                         json.dumps(b["toolUse"].get("input") or {}))
        for b in blocks if "toolUse" in b
    ]
    text = "".join(texts) if texts else None
    message = shapes.chat_message(text, calls or None)
    return shapes.chat_response(
        model=model,
        choices=[shapes.chat_choice(0, message, finish_reason(reply.get("stopReason")))],
        usage=converse_usage(reply.get("usage")),
    )


@dataclass
class StreamState:
    """What a ConverseStream translation remembers between events."""

    model: str
    include_usage: bool = False
    id: str = field(default_factory=lambda: shapes.new_id("chatcmpl"))
    created: int = field(default_factory=shapes.now)
    tool_index: dict[int, int] = field(default_factory=dict)  # contentBlockIndex → tool call index
    stopped: bool = False
    finished: bool = False

    def chunk(self, delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
        return shapes.chat_chunk(id=self.id, model=self.model, created=self.created, delta=delta,
                                 finish_reason=finish, usage=usage)


def from_stream_event(event: Mapping[str, Any], state: StreamState) -> Iterator[dict]:
    """One ConverseStream event (as botocore decodes it: `{"<eventType>": {...}}`) → unified chunks."""
    if "messageStart" in event:
        # {"messageStart": {"role": "assistant"}}
        yield state.chunk({"role": "assistant", "content": ""})
    elif "contentBlockStart" in event:
        # {"contentBlockStart": {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId", "name"}}}}
        body = event["contentBlockStart"]
        use = (body.get("start") or {}).get("toolUse")
        if use:
            index = state.tool_index.setdefault(body.get("contentBlockIndex", 0), len(state.tool_index))
            yield state.chunk({"tool_calls": [{
                "index": index, "id": use["toolUseId"], "type": "function",
                "function": {"name": use["name"], "arguments": ""},
            }]})
    elif "contentBlockDelta" in event:
        # {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "..."}}}
        # or {"delta": {"toolUse": {"input": "<partial JSON>"}}}
        body = event["contentBlockDelta"]
        delta = body.get("delta") or {}
        if "text" in delta:
            yield state.chunk({"content": delta["text"]})
        elif "toolUse" in delta:
            index = state.tool_index.get(body.get("contentBlockIndex", 0))
            if index is None:
                raise UpstreamError(f"The {LABEL} provider streamed tool input before the tool call.")
            yield state.chunk({"tool_calls": [{"index": index, "function": {"arguments": delta["toolUse"].get("input", "")}}]})
    elif "messageStop" in event:
        # {"messageStop": {"stopReason": "end_turn"}}
        state.stopped = True
        yield state.chunk({}, finish_reason(event["messageStop"].get("stopReason")) or "stop")
    elif "metadata" in event:
        # {"metadata": {"usage": {"inputTokens", "outputTokens", "totalTokens"}, "metrics": {...}}}
        state.finished = True
        if state.include_usage:
            usage = converse_usage(event["metadata"].get("usage"))
            yield {**state.chunk({}), "choices": [], "usage": usage}
