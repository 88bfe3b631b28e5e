"""Mistral (api.mistral.ai): chat, completions as a one-turn chat, and embeddings."""
from __future__ import annotations

import json
from typing import Any, Mapping

from app.config_fields import Secret, Url
from app.errors import InvalidRequest, UpstreamError
from app.providers.base import ProviderConfig
from app.providers.openai_compat import OpenAICompatible, Translation, chunk_envelope, embeddings_reply, reply_fields
from app.providers.translate import (
    max_tokens, parameters_of, reject_unknown, single_prompt, text_of, tool_name, tool_names,
)
from app.schemas import shapes

MISTRAL_BASE = "https://api.mistral.ai/v1"
LABEL = "Mistral"
# Mistral's ChatCompletionRequest caps temperature at 1.5 (mistral.openapi.yaml); the unified
# range is 0-2. Temperature means the same thing on both sides, so values pass unchanged and
# 1.5 < t <= 2 is rejected rather than silently clamped or rescaled.
MAX_TEMPERATURE = 1.5

CHAT_PARAMS = frozenset({
    "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n",
    "seed", "random_seed", "presence_penalty", "frequency_penalty", "response_format", "tools",
    "tool_choice", "parallel_tool_calls", "safe_prompt", "prediction", "prompt_mode",
})
COMPLETIONS_PARAMS = (CHAT_PARAMS - {"messages", "tools", "tool_choice", "parallel_tool_calls"}) | {"prompt"}
EMBEDDINGS_PARAMS = frozenset({"input", "dimensions", "encoding_format", "output_dtype"})


class MistralConfig(ProviderConfig):
    mistral_api_key = Secret(required=True)
    mistral_api_base = Url()


# ----- translation (pure) ------------------------------------------------------------------


def _content(content: Any, index: int) -> Any:
    """Unified content -> Mistral content: a string, or `[{"type":"text","text"}|{"type":"image_url","image_url":{"url"}}]`."""
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        if part["type"] == "text":
            parts.append({"type": "text", "text": part["text"]})
        elif part["type"] == "image_url":
            url = part.get("image_url")
            parts.append({"type": "image_url", "image_url": url.get("url") if isinstance(url, dict) else url})
        else:
            raise InvalidRequest(
                f"Content parts of type '{part['type']}' are not supported by the {LABEL} provider.",
                param=f"messages[{index}].content",
            )
    return parts


def messages_to_upstream(messages: list[Mapping[str, Any]]) -> list[dict]:
    """Unified messages -> Mistral `[{"role":"system|user|assistant|tool", "content", "tool_calls"?, "tool_call_id"?, "name"?}]`."""
    names = tool_names(messages)
    out: list[dict] = []
    for i, m in enumerate(messages):
        if m.get("name") is not None:
            raise InvalidRequest(
                f"messages[{i}].name is not supported by the {LABEL} provider.", param=f"messages[{i}].name"
            )
        role = m["role"]
        if role in ("system", "developer"):
            # Mistral has no developer role; it is OpenAI's new name for the system prompt.
            out.append({"role": "system", "content": text_of(m["content"])})
        elif role == "user":
            out.append({"role": "user", "content": _content(m["content"], i)})
        elif role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": _content(m.get("content"), i)}
            if m.get("tool_calls"):
                msg["tool_calls"] = [
                    {"id": c["id"], "type": "function",
                     "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
                    for c in m["tool_calls"]
                ]
            out.append(msg)
        else:  # tool
            out.append({"role": "tool", "content": text_of(m["content"]),
                        "tool_call_id": m["tool_call_id"], "name": tool_name(names, m, i, LABEL)})
    return out


def _tools(tools: list[Mapping[str, Any]]) -> list[dict]:
    """OpenAI tools -> Mistral `[{"type":"function","function":{"name","description","parameters"}}]` (parameters required)."""
    out = []
    for tool in tools:
        fn = tool["function"]
        spec: dict[str, Any] = {"name": fn["name"], "parameters": parameters_of(fn)}
        for key in ("description", "strict"):
            if key in fn:
                spec[key] = fn[key]
        out.append({"type": "function", "function": spec})
    return out


def _tool_choice(choice: Any) -> Any:
    # Mistral's enum is auto|none|any|required; `any` is its documented name for "must call".
    if choice == "required":
        return "any"
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["function"]["name"]}}
    return choice


def _sampling(request: Mapping[str, Any], body: dict) -> dict:
    temperature = request.get("temperature")
    if temperature is not None and temperature > MAX_TEMPERATURE:
        raise InvalidRequest(
            f"temperature {temperature} is above the {LABEL} provider's maximum of {MAX_TEMPERATURE}.",
            param="temperature",
        )
    for key in ("temperature", "top_p", "stop", "n", "presence_penalty", "frequency_penalty",
                "response_format", "safe_prompt", "prediction", "prompt_mode", "random_seed"):
        if request.get(key) is not None:
            body[key] = request[key]
    if request.get("seed") is not None:
        body["random_seed"] = request["seed"]  # Mistral spells OpenAI's seed `random_seed`
    if max_tokens(request) is not None:
        body["max_tokens"] = max_tokens(request)
    if request.get("stream"):
        body["stream"] = True
    return body


def chat_to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified chat request -> Mistral `/v1/chat/completions` body."""
    reject_unknown(request, CHAT_PARAMS, LABEL)
    body: dict[str, Any] = {"model": model, "messages": messages_to_upstream(request["messages"])}
    if request.get("tools"):
        body["tools"] = _tools(request["tools"])
    if request.get("tool_choice") is not None:
        body["tool_choice"] = _tool_choice(request["tool_choice"])
    if request.get("parallel_tool_calls") is not None:
        body["parallel_tool_calls"] = request["parallel_tool_calls"]
    return _sampling(request, body)


def completions_to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified completions request -> a one-user-turn chat body (Mistral has no plain completions)."""
    reject_unknown(request, COMPLETIONS_PARAMS, LABEL)
    body = {"model": model, "messages": [{"role": "user", "content": single_prompt(request, LABEL)}]}
    return _sampling(request, body)


def embeddings_to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified embeddings request -> `{"model","input","output_dimension"?,"output_dtype"?}`."""
    reject_unknown(request, EMBEDDINGS_PARAMS, LABEL)
    if request.get("encoding_format", "float") != "float":
        raise InvalidRequest(f"encoding_format must be 'float' for the {LABEL} provider.", param="encoding_format")
    body = {"model": model, "input": request["input"]}
    if request.get("dimensions") is not None:
        body["output_dimension"] = request["dimensions"]
    if request.get("output_dtype") is not None:
        body["output_dtype"] = request["output_dtype"]
    return body


def finish_reason(value: Any) -> str | None:
    """Mistral `stop|length|model_length|tool_calls|error` -> OpenAI; `error` is a failure."""
    if value == "error":
        raise UpstreamError(f"The {LABEL} provider stopped generating with finish_reason 'error'.")
    return "length" if value == "model_length" else value


def _text(content: Any) -> str | None:
    # Reasoning models answer with chunks (`[{"type":"thinking",...},{"type":"text","text"}]`).
    return text_of(content) if isinstance(content, list) else content


def _tool_calls(calls: Any) -> list[dict] | None:
    """`[{"id","function":{"name","arguments": str | object}}]` -> OpenAI calls (arguments as a string)."""
    if not calls:
        return None
    out = []
    for c in calls:
        args = c["function"].get("arguments")
        out.append(shapes.tool_call(c.get("id") or shapes.new_id("call"), c["function"]["name"],
                                    args if isinstance(args, str) else json.dumps(args)))
    return out


def chat_from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """Mistral `{"id","created","choices":[{"index","message","finish_reason"}],"usage"}` -> unified chat."""
    choices = [
        shapes.chat_choice(c["index"], shapes.chat_message(_text(c["message"].get("content")),
                                                           _tool_calls(c["message"].get("tool_calls"))),
                           finish_reason(c.get("finish_reason")))
        for c in body.get("choices") or ()
    ]
    return shapes.chat_response(choices=choices, **reply_fields(body, model))


def completions_from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """The chat-shaped reply read back as completions: `message.content` is the text."""
    choices = [
        shapes.completions_choice(c["index"], _text(c["message"].get("content")) or "", finish_reason(c.get("finish_reason")))
        for c in body.get("choices") or ()
    ]
    return shapes.completions_response(choices=choices, **reply_fields(body, model))



def _delta(delta: Mapping[str, Any]) -> dict:
    out: dict[str, Any] = {}
    if delta.get("role"):
        out["role"] = delta["role"]
    if delta.get("content") is not None:
        out["content"] = _text(delta["content"])
    if delta.get("tool_calls"):
        out["tool_calls"] = [
            {"index": c.get("index", i), "id": c.get("id"), "type": "function",
             "function": {"name": c["function"].get("name"),
                          "arguments": a if isinstance(a := c["function"].get("arguments"), str) else json.dumps(a)}}
            for i, c in enumerate(delta["tool_calls"])
        ]
    return out


def _stream_error(event: Mapping[str, Any]) -> None:
    # Mistral's error envelope `{"object":"error","message",...}` arriving as a stream event.
    if event.get("object") == "error":
        raise UpstreamError(f"The {LABEL} provider failed mid-stream: {event.get('message') or 'unknown error'}")


def chat_chunk_from_upstream(event: Mapping[str, Any], model: str) -> dict:
    """Mistral `chat.completion.chunk` (usage on the last one) -> unified chat chunk."""
    _stream_error(event)
    choices = [{"index": c["index"], "delta": _delta(c.get("delta") or {}),
                "finish_reason": finish_reason(c.get("finish_reason"))} for c in event.get("choices") or ()]
    return chunk_envelope(event, model, "chat.completion.chunk", choices)


def completions_chunk_from_upstream(event: Mapping[str, Any], model: str) -> dict:
    """The chat chunk's `delta.content` becomes the completions chunk's `text`."""
    _stream_error(event)
    choices = [{"index": c["index"], "text": _text((c.get("delta") or {}).get("content")) or "",
                "finish_reason": finish_reason(c.get("finish_reason"))} for c in event.get("choices") or ()]
    return chunk_envelope(event, model, "text_completion", choices)


embeddings_from_upstream = embeddings_reply  # both vendors answer in OpenAI's embeddings shape


# ----- transport ---------------------------------------------------------------------------


class MistralProvider(OpenAICompatible):
    name = "mistral"
    display_name = LABEL
    config_schema = MistralConfig
    base_url_key = "mistral_api_base"
    default_base_url = MISTRAL_BASE
    key_field = "mistral_api_key"
    completions_path = "chat/completions"  # completions go out as a single user turn
    translation = Translation(
        chat_to_upstream, chat_from_upstream, chat_chunk_from_upstream,
        completions_to_upstream, completions_from_upstream, completions_chunk_from_upstream,
        embeddings_to_upstream, embeddings_from_upstream,
    )

    def error_message(self, body: Any) -> str | None:
        # FastAPI validation errors: {"detail":[{"loc":[...],"msg":"..."}]}
        if isinstance(body, dict) and isinstance(body.get("detail"), list):
            return "; ".join(
                f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in body["detail"] if isinstance(d, dict)
            ) or None
        return super().error_message(body)
