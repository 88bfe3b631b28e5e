"""Together AI (api.together.xyz): OpenAI-compatible chat, completions and embeddings."""
from __future__ import annotations

import math
from typing import Any, Mapping

import requests

from app.config_fields import Secret, Url
from app.errors import GatewayError, InvalidRequest, UpstreamError
from app.providers.base import ProviderConfig, map_status
from app.providers.openai_compat import OpenAICompatible, Translation, chunk_envelope, embeddings_reply, reply_fields
from app.providers.translate import as_list, max_tokens, reject_unknown, single_prompt, text_of
from app.schemas import shapes

TOGETHER_BASE = "https://api.together.xyz/v1"
LABEL = "Together AI"

# Sampling keys sent as they are: OpenAI's plus Together's own (together.openapi.yaml).
# Temperature passes unchanged: Together documents 0-1 as the useful range but sets no
# maximum in its schema, and the meaning (softmax divisor) is the same as OpenAI's.
SAMPLING = frozenset({
    "temperature", "top_p", "n", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
    "top_k", "repetition_penalty", "min_p", "echo", "safety_model",
})
CHAT_ONLY = frozenset({
    "response_format", "context_length_exceeded_behavior", "reasoning_effort",
})
CHAT_PARAMS = SAMPLING | CHAT_ONLY | {"messages", "tools", "tool_choice", "max_tokens", "max_completion_tokens", "stop"}
COMPLETIONS_PARAMS = SAMPLING | {"prompt", "max_tokens", "max_completion_tokens", "stop"}
EMBEDDINGS_PARAMS = frozenset({"input", "encoding_format"})


class TogetherConfig(ProviderConfig):
    togetherai_api_key = Secret(required=True)
    togetherai_api_base = Url()


# ----- translation (pure) ------------------------------------------------------------------


def _common(request: Mapping[str, Any], body: dict, allowed: frozenset[str]) -> dict:
    for key in sorted(allowed & (SAMPLING | CHAT_ONLY)):
        if request.get(key) is not None:
            body[key] = request[key]
    if max_tokens(request) is not None:
        body["max_tokens"] = max_tokens(request)
    stop = request.get("stop")
    if stop is not None:
        body["stop"] = as_list(stop)  # Together takes a list only
    return body


def _message(m: Mapping[str, Any], index: int) -> dict:
    """Unified message -> Together's: system/assistant/tool content is a string; user may have parts."""
    role = "system" if m["role"] == "developer" else m["role"]
    out: dict[str, Any] = {"role": role}
    if role == "user":
        out["content"] = m["content"]
    elif isinstance(m.get("content"), list):
        if any(p["type"] != "text" for p in m["content"]):
            raise InvalidRequest(
                f"messages[{index}] ({role}) may only hold text parts for the {LABEL} provider.",
                param=f"messages[{index}].content",
            )
        out["content"] = text_of(m["content"])
    elif m.get("content") is not None:
        out["content"] = m["content"]  # an assistant turn of only tool calls has no content key
    if m.get("name") is not None:
        out["name"] = m["name"]
    if role == "assistant" and m.get("tool_calls"):
        # Together's schema wants `index` on replayed calls (ToolChoice: id, type, function, index).
        out["tool_calls"] = [
            {"index": i, "id": c["id"], "type": "function",
             "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
            for i, c in enumerate(m["tool_calls"])
        ]
    if role == "tool":
        out["tool_call_id"] = m["tool_call_id"]
    return out


def _tool_choice(choice: Any) -> Any:
    # together.openapi.yaml: tool_choice is a string (`auto|none|required` or a tool's name).
    if isinstance(choice, dict):
        return choice["function"]["name"]
    return choice


def chat_to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified chat request -> Together `/chat/completions` body."""
    reject_unknown(request, CHAT_PARAMS, LABEL)
    body: dict[str, Any] = {
        "model": model, "messages": [_message(m, i) for i, m in enumerate(request["messages"])]
    }
    if request.get("tools"):
        body["tools"] = [
            {"type": "function", "function": {k: v for k, v in t["function"].items()
                                              if k in ("name", "description", "parameters")}}
            for t in request["tools"]
        ]
    if request.get("tool_choice") is not None:
        body["tool_choice"] = _tool_choice(request["tool_choice"])
    return _common(request, body, CHAT_PARAMS)


def completions_to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified completions request -> Together `/completions` body (`prompt` is one string)."""
    reject_unknown(request, COMPLETIONS_PARAMS, LABEL)
    return _common(request, {"model": model, "prompt": single_prompt(request, LABEL)}, COMPLETIONS_PARAMS)


def embeddings_to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified embeddings request -> `{"model","input"}`."""
    reject_unknown(request, EMBEDDINGS_PARAMS, LABEL)
    if request.get("encoding_format", "float") != "float":
        raise InvalidRequest(f"encoding_format must be 'float' for the {LABEL} provider.", param="encoding_format")
    return {"model": model, "input": request["input"]}


def finish_reason(value: Any) -> str | None:
    """Together `stop|eos|length|tool_calls|error` -> OpenAI; `error` is a failure."""
    if value == "error":
        raise UpstreamError(f"The {LABEL} provider stopped generating with finish_reason 'error'.")
    if value == "function_call":
        return "tool_calls"
    return "stop" if value == "eos" else value



def _calls(calls: Any) -> list[dict] | None:
    if not calls:
        return None
    return [shapes.tool_call(c.get("id") or shapes.new_id("call"), c["function"]["name"], c["function"].get("arguments") or "")
            for c in calls]


def chat_from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """Together `{"id","created","choices":[{"index","message","finish_reason"}],"usage"}` -> unified chat."""
    choices = [
        shapes.chat_choice(c.get("index", i), shapes.chat_message(c["message"].get("content"), _calls(c["message"].get("tool_calls"))),
                           finish_reason(c.get("finish_reason")))
        for i, c in enumerate(body.get("choices") or ())
    ]
    return shapes.chat_response(choices=choices, **reply_fields(body, model))


def completions_from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """Together `{"choices":[{"index","text","finish_reason"}],"usage"}` -> unified completions."""
    choices = [
        shapes.completions_choice(c.get("index", i), c.get("text") or "", finish_reason(c.get("finish_reason")))
        for i, c in enumerate(body.get("choices") or ())
    ]
    return shapes.completions_response(choices=choices, **reply_fields(body, model))


def _delta(delta: Mapping[str, Any]) -> dict:
    # Together adds `token_id` to deltas; the unified delta keeps role, content and tool_calls.
    return {k: delta[k] for k in ("role", "content", "tool_calls") if delta.get(k) is not None}


def chat_chunk_from_upstream(event: Mapping[str, Any], model: str) -> dict:
    """`{"object":"chat.completion.chunk","choices":[{"index","text","delta":{"token_id","content"},"finish_reason"}],"usage"}` -> unified."""
    choices = [{"index": c.get("index", 0), "delta": _delta(c.get("delta") or {}),
                "finish_reason": finish_reason(c.get("finish_reason"))} for c in event.get("choices") or ()]
    return chunk_envelope(event, model, "chat.completion.chunk", choices)


def completions_chunk_from_upstream(event: Mapping[str, Any], model: str) -> dict:
    """`{"object":"completion.chunk","choices":[{"index","text","finish_reason"}],"usage"}` -> `text_completion` chunk."""
    choices = [{"index": c.get("index", 0),
                "text": c.get("text") if c.get("text") is not None else (c.get("delta") or {}).get("content") or "",
                "finish_reason": finish_reason(c.get("finish_reason"))} for c in event.get("choices") or ()]
    return chunk_envelope(event, model, "text_completion", choices)


embeddings_from_upstream = embeddings_reply  # both vendors answer in OpenAI's embeddings shape


# ----- transport ---------------------------------------------------------------------------


class TogetherAIProvider(OpenAICompatible):
    name = "togetherai"
    display_name = LABEL
    config_schema = TogetherConfig
    base_url_key = "togetherai_api_base"
    default_base_url = TOGETHER_BASE
    key_field = "togetherai_api_key"
    translation = Translation(
        chat_to_upstream, chat_from_upstream, chat_chunk_from_upstream,
        completions_to_upstream, completions_from_upstream, completions_chunk_from_upstream,
        embeddings_to_upstream, embeddings_from_upstream,
    )

    def upstream_error(self, resp: requests.Response) -> GatewayError:
        # Together once sent rate limits as 400 `code: "rate_limit"` (together-python's comment), and
        # may give only `retry-after-ms`; both still mean "429, retry after N seconds" to clients.
        err = super().upstream_error(resp)
        if resp.status_code == 400 and err.code == "rate_limit":
            err = map_status(429, err.message, self._label(), resp.headers, code="rate_limit")
        if err.status == 429 and "Retry-After" not in err.headers:
            try:
                ms = float(resp.headers.get("retry-after-ms", ""))
            except ValueError:
                ms = None
            if ms is not None and ms >= 0:
                err.headers["Retry-After"] = str(math.ceil(ms / 1000))
        return err
