"""Cohere: chat and completions through v2 chat (`POST /v2/chat`), embeddings through `/v2/embed`."""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator, Mapping

from app.config_fields import Secret, Url
from app.errors import UpstreamError
from app.providers.base import BaseProvider, Chunk, ProviderConfig
from app.providers.cohere_stream import StreamTranslator, chat_finish, to_usage
from app.providers.translate import (
    as_list, chat_as_completions, check_keys, include_usage, invalid, max_tokens, one_candidate, one_prompt,
    parameters_of, text_of,
)
from app.schemas import shapes

COHERE_BASE = "https://api.cohere.com"
LABEL = "Cohere"
MAX_STOP_SEQUENCES = 5
MAX_EMBED_TEXTS = 96
P_RANGE = (0.01, 0.99)

# Unified keys this module translates, and v2 chat keys sent on unchanged; anything else is
# refused by name rather than dropped.
HANDLED = {
    "messages", "prompt", "temperature", "top_p", "top_k", "n", "max_tokens",
    "max_completion_tokens", "stop", "stream", "stream_options", "tools", "tool_choice",
    "response_format", "parallel_tool_calls",
}
PASS_THROUGH = {
    "seed", "frequency_penalty", "presence_penalty", "safety_mode", "documents",
    "citation_options", "strict_tools", "thinking", "priority",
}
EMBED_PASS_THROUGH = {"input_type", "truncate", "max_tokens", "priority"}
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")


class CohereConfig(ProviderConfig):
    cohere_api_key = Secret(required=True)
    cohere_api_base = Url()


# ----- translation (pure) ------------------------------------------------------------------


_invalid = partial(invalid, label=LABEL)


def _content(content: Any) -> str | list[dict]:
    """OpenAI content → v2 content: a string, or `[{"type":"text","text"} | {"type":"image_url",…}]`."""
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part["type"] == "text":
            parts.append({"type": "text", "text": part["text"]})
        elif part["type"] == "image_url":
            parts.append({"type": "image_url", "image_url": {"url": (part.get("image_url") or {}).get("url", "")}})
        else:
            raise _invalid("messages", f"content parts of type {part['type']!r} are not supported")
    return parts


def to_messages(messages: list[Mapping[str, Any]]) -> list[dict]:
    """OpenAI messages → v2 messages (roles system|user|assistant|tool).

    Writes `{"role":"assistant","content"?,"tool_calls":[{"id","type":"function","function":
    {"name","arguments"}}]}` and `{"role":"tool","tool_call_id","content"}`; developer → system.
    """
    out = []
    for m in messages:
        role = "system" if m["role"] == "developer" else m["role"]
        if role == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": text_of(m.get("content"))})
        elif role == "assistant":
            msg: dict[str, Any] = {"role": "assistant"}
            if m.get("content"):
                msg["content"] = text_of(m["content"])
            if m.get("tool_calls"):
                msg["tool_calls"] = [
                    shapes.tool_call(c["id"], c["function"]["name"], c["function"]["arguments"])
                    for c in m["tool_calls"]
                ]
            out.append(msg)
        elif role == "system":
            out.append({"role": "system", "content": text_of(m.get("content"))})
        else:
            out.append({"role": "user", "content": _content(m.get("content"))})
    return out


def to_tools(tools: list[Mapping[str, Any]]) -> list[dict]:
    """OpenAI tools → `[{"type":"function","function":{"name","description","parameters"}}]`."""
    out = []
    for tool in tools:
        fn = tool["function"]
        item = {"name": fn["name"], "parameters": parameters_of(fn)}
        if fn.get("description"):
            item["description"] = fn["description"]
        out.append({"type": "function", "function": item})
    return out


def to_response_format(fmt: Any) -> dict | None:
    """OpenAI `{"type":"json_object"|"json_schema","json_schema":{"schema"}}` → v2 `{"type":"json_object","json_schema"?}`."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance((fmt.get("json_schema") or {}).get("schema"), dict):
        return {"type": "json_object", "json_schema": fmt["json_schema"]["schema"]}
    raise _invalid("response_format", "must be text, json_object or json_schema with a schema")


def to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified chat or completions request → v2 chat body.

    Mappings: temperature 0–2 is halved onto Cohere's documented 0–1; top_p → `p`, clamped into
    Cohere's 0.01–0.99; top_k → `k` (0–500); stop → `stop_sequences` (≤5).
    """
    check_keys(request, HANDLED | PASS_THROUGH, LABEL)
    one_candidate(request, LABEL, "must be 1 (Cohere returns one candidate)")
    if "prompt" in request:
        messages = [{"role": "user", "content": one_prompt(request, LABEL, "must be a single string")}]
    else:
        messages = to_messages(request["messages"])
    body: dict[str, Any] = {"model": model, "messages": messages}
    if request.get("stream"):
        body["stream"] = True
    if max_tokens(request):
        body["max_tokens"] = max_tokens(request)
    if "temperature" in request:
        body["temperature"] = round(request["temperature"] / 2, 6)
    if "top_p" in request:
        body["p"] = min(max(request["top_p"], P_RANGE[0]), P_RANGE[1])
    if "top_k" in request:
        k = request["top_k"]
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 500:
            raise _invalid("top_k", "must be an integer from 0 to 500")
        body["k"] = k
    if request.get("stop"):
        stop = as_list(request["stop"])
        if len(stop) > MAX_STOP_SEQUENCES:
            raise _invalid("stop", f"takes at most {MAX_STOP_SEQUENCES} sequences")
        body["stop_sequences"] = stop
    if request.get("tools"):
        body["tools"] = to_tools(request["tools"])
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        raise _invalid("tool_choice", "cannot name a function (only auto, required or none)")
    if choice == "required" and not body.get("tools"):
        raise _invalid("tool_choice", "'required' needs tools")
    if choice in ("required", "none") and body.get("tools"):
        body["tool_choice"] = choice.upper()
    if request.get("parallel_tool_calls") is False:
        # Cohere may always call several tools in one turn; it has no switch to forbid it.
        raise _invalid("parallel_tool_calls", "cannot be false")
    if request.get("response_format") is not None:
        fmt = to_response_format(request["response_format"])
        if fmt:
            body["response_format"] = fmt
    for key in PASS_THROUGH & request.keys():
        body[key] = request[key]
    return body


def from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """`{"id","finish_reason","message":{"content":[{"type":"text","text"}],"tool_calls"?},"usage"}` → chat."""
    message = body.get("message") or {}
    text = "".join(p.get("text", "") for p in message.get("content") or () if p.get("type") == "text")
    calls = [
        shapes.tool_call(c.get("id", ""), c["function"]["name"], c["function"].get("arguments") or "{}")
        for c in message.get("tool_calls") or () if isinstance(c.get("function"), dict)
    ]
    reason = chat_finish(body.get("finish_reason"), bool(text or calls))
    return shapes.chat_response(
        model=model, id=body.get("id"),
        choices=[shapes.chat_choice(0, shapes.chat_message(text if text or not calls else None, calls), reason)],
        usage=to_usage(body.get("usage")),
    )


def completions_from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """The same v2 chat reply, as a text completion."""
    return chat_as_completions(from_upstream(body, model))


def to_embed(request: Mapping[str, Any], model: str) -> dict:
    """OpenAI embeddings request → `{"model","texts","input_type","embedding_types":["float"]}`."""
    check_keys(request, {"input", "dimensions", "encoding_format"} | EMBED_PASS_THROUGH, LABEL)
    if request.get("encoding_format", "float") != "float":
        raise _invalid("encoding_format", "must be float")
    texts = as_list(request["input"])
    if len(texts) > MAX_EMBED_TEXTS:
        raise _invalid("input", f"takes at most {MAX_EMBED_TEXTS} texts per call")
    if request.get("input_type", INPUT_TYPES[0]) not in INPUT_TYPES:
        raise _invalid("input_type", f"must be one of {', '.join(INPUT_TYPES)} for text input")
    body: dict[str, Any] = {
        "model": model, "texts": texts,
        "input_type": request.get("input_type", INPUT_TYPES[0]),
        "embedding_types": ["float"],
    }
    if "dimensions" in request:
        body["output_dimension"] = request["dimensions"]
    for key in ("truncate", "max_tokens", "priority"):
        if key in request:
            body[key] = request[key]
    return body


def from_embed(body: Mapping[str, Any], model: str) -> dict:
    """`{"embeddings":{"float":[[…]]},"meta":{"billed_units":{"input_tokens"}}}` → OpenAI list."""
    vectors = (body.get("embeddings") or {}).get("float")
    if not isinstance(vectors, list):
        raise UpstreamError(f"The {LABEL} provider's embed reply has no float embeddings.")
    tokens = ((body.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
    usage = {"prompt_tokens": tokens, "total_tokens": tokens} if tokens is not None else None
    return shapes.embeddings_response(model=model, vectors=vectors, usage=usage)


# ----- transport ---------------------------------------------------------------------------


class CohereProvider(BaseProvider):
    name = "cohere"
    display_name = LABEL
    config_schema = CohereConfig
    base_url_key = "cohere_api_base"
    default_base_url = COHERE_BASE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = self.base_url(self.config)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config['cohere_api_key']}"}

    def chat(self, request: dict) -> dict:
        return from_upstream(self.post_json(f"{self.base}/v2/chat", to_upstream(request, self.model)), self.model)

    def completions(self, request: dict) -> dict:
        body = self.post_json(f"{self.base}/v2/chat", to_upstream(request, self.model))
        return completions_from_upstream(body, self.model)

    def embeddings(self, request: dict) -> dict:
        return from_embed(self.post_json(f"{self.base}/v2/embed", to_embed(request, self.model)), self.model)

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        return self._stream(request, "chat")

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        return self._stream(request, "completions")

    def _events(self, resp: Any) -> Iterator[tuple[str | None, Any]]:
        """(event name, parsed data) from SSE, or from NDJSON lines when the reply is not SSE."""
        if "text/event-stream" not in resp.headers.get("Content-Type", ""):
            for obj in self.iter_ndjson(resp):
                yield None, obj
            return
        for event in self.iter_sse(resp):
            if not event.data:
                continue
            if event.data.strip() == "[DONE]":
                yield "[DONE]", None
                continue
            name = event.event if event.event and event.event != "message" else None
            yield name, self.parse_event(event.data)

    def _stream(self, request: dict, kind: str) -> Iterator[Chunk]:
        body = to_upstream({**request, "stream": True}, self.model)
        translator = StreamTranslator(self.model, kind, include_usage(request))
        resp = self.post_stream(f"{self.base}/v2/chat", body, headers={"Accept": "text/event-stream"})
        for name, data in self._events(resp):
            if name == "[DONE]":
                break
            if not isinstance(data, dict):
                raise UpstreamError(f"The {LABEL} provider sent a stream event that is not an object.")
            name = name or data.get("type") or data.get("event_type")
            yield from translator.feed(name, data, self.redact)
            if translator.done:
                return
        raise UpstreamError(f"The {LABEL} provider's stream ended without message-end.")
