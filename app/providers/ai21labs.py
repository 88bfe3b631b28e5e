"""AI21 Labs: Jamba chat (/chat/completions) and the legacy Jurassic-2 `/{model}/complete` API."""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator, Mapping

from app.config_fields import Secret, Url
from app.errors import UpstreamError
from app.providers.base import CHAT, BaseProvider, Chunk, ProviderConfig
from app.providers.openai import chunk_error
from app.providers.translate import (
    as_list, chat_as_completions, check_keys, include_usage, invalid, max_tokens, one_prompt,
)
from app.schemas import shapes

AI21_BASE = "https://api.ai21.com/studio/v1"
LABEL = "AI21 Labs"
# Jamba chat body keys (ai21.openapi.json ChatRequest); anything else a client sends is refused.
CHAT_KEYS = {
    "messages", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stop",
    "stream", "stream_options", "tools", "tool_choice", "response_format", "documents",
}
COMPLETE_KEYS = {"prompt", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stop", "stream"}
JAMBA_COMPLETION_KEYS = (CHAT_KEYS - {"messages", "tools", "tool_choice", "documents"}) | {"prompt"}
# Jurassic `finishReason.reason` → OpenAI finish_reason.
J2_REASONS = {"endoftext": "stop", "stop": "stop", "length": "length"}


class AI21Config(ProviderConfig):
    ai21labs_api_key = Secret(required=True)
    ai21labs_api_base = Url()


def is_legacy(model: str) -> bool:
    """Jurassic models (`j2-ultra`, `j2-mid`, ...) only speak `/{model}/complete`."""
    return model.startswith(("j1-", "j2-"))


reject = partial(invalid, label=LABEL)


# ----- translation (pure) ------------------------------------------------------------------


def message_to_upstream(index: int, message: Mapping[str, Any]) -> dict:
    """Unified message → AI21 `UserMessage|AssistantMessage|ToolMessage|SystemMessage`.

    AI21 content is a plain string: `{"role":"user","content":"..."}`; assistant messages may
    carry `tool_calls: [{"id","type":"function","function":{"name","arguments"}}]`, tool
    messages `tool_call_id`.
    """
    if "name" in message:
        raise reject(f"messages[{index}].name", "is not supported")
    role = "system" if message["role"] == "developer" else message["role"]
    out: dict[str, Any] = {"role": role}
    content = message.get("content")
    if isinstance(content, list):
        if any(part.get("type") != "text" for part in content):
            raise reject(f"messages[{index}].content", "accepts only text parts")
        content = "".join(part["text"] for part in content)
    if content is not None:
        out["content"] = content
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
            for c in message["tool_calls"]
        ]
    if role == "tool":
        out["tool_call_id"] = message["tool_call_id"]
    return out


def chat_to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified chat request → Jamba `ChatRequest` `{"model","messages",...}`."""
    check_keys(request, CHAT_KEYS, LABEL)
    if request.get("tool_choice") not in (None, "auto"):
        raise reject("tool_choice", "other than 'auto' is not supported")
    fmt = request.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object")):
        raise reject("response_format", "must be {'type': 'text'} or {'type': 'json_object'}")
    if request.get("stream") and request.get("n", 1) > 1:
        raise reject("n", "must be 1 when streaming")
    body: dict[str, Any] = {
        "model": model,
        "messages": [message_to_upstream(i, m) for i, m in enumerate(request["messages"])],
    }
    for key in ("temperature", "top_p", "n", "stop", "tools", "response_format", "documents"):
        if key in request:
            body[key] = request[key]
    if max_tokens(request) is not None:
        body["max_tokens"] = max_tokens(request)
    if request.get("stream"):
        body["stream"] = True
    return body


def chat_from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """Jamba `{"id","choices":[{"index","message":{"role","content","tool_calls"},"finish_reason"}],"usage"}`."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise UpstreamError(f"The {LABEL} provider returned a reply without choices.")
    choices = []
    for choice in body["choices"]:
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            raise UpstreamError(f"The {LABEL} provider returned a choice without a message.")
        msg = choice["message"]
        choices.append(shapes.chat_choice(
            choice.get("index", len(choices)),
            shapes.chat_message(msg.get("content"), msg.get("tool_calls") or None),
            choice.get("finish_reason"),
        ))
    if not choices:
        raise UpstreamError(f"The {LABEL} provider returned no choices.")
    return shapes.chat_response(model=model, choices=choices, usage=body.get("usage"), id=body.get("id"))


def completion_to_chat(request: Mapping[str, Any], model: str) -> dict:
    """A completions request as one Jamba user turn (the prompt is the whole message)."""
    check_keys(request, JAMBA_COMPLETION_KEYS, LABEL)
    prompt = one_prompt(request, LABEL, "must be a single prompt")
    chat = {k: v for k, v in request.items() if k != "prompt"}
    return chat_to_upstream({**chat, "messages": [{"role": "user", "content": prompt}]}, model)


def complete_to_upstream(request: Mapping[str, Any]) -> dict:
    """Unified completions → Jurassic `{"prompt","maxTokens","numResults","temperature","topP","stopSequences"}`."""
    check_keys(request, COMPLETE_KEYS, LABEL)
    if request.get("stream"):
        raise reject("stream", "is not supported for Jurassic-2 models")
    body: dict[str, Any] = {"prompt": one_prompt(request, LABEL, "must be a single prompt")}
    names = {"temperature": "temperature", "top_p": "topP", "n": "numResults"}
    for ours, theirs in names.items():
        if ours in request:
            body[theirs] = request[ours]
    if max_tokens(request) is not None:
        body["maxTokens"] = max_tokens(request)
    if "stop" in request:
        body["stopSequences"] = as_list(request["stop"])
    return body


def complete_from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """Jurassic `{"id","completions":[{"data":{"text"},"finishReason":{"reason"}}]}`; no usage."""
    completions = body.get("completions") if isinstance(body, dict) else None
    if not isinstance(completions, list) or not completions or not all(isinstance(c, dict) for c in completions):
        raise UpstreamError(f"The {LABEL} provider returned no completions.")
    choices = []
    for i, item in enumerate(completions):
        reason = ((item.get("finishReason") or {}).get("reason"))
        choices.append(shapes.completions_choice(
            i, (item.get("data") or {}).get("text") or "", J2_REASONS.get(reason, reason),
        ))
    return shapes.completions_response(model=model, choices=choices, usage=None, id=str(body.get("id") or "") or None)


def chat_chunk(event: Mapping[str, Any], model: str, created: int) -> dict:
    """Jamba chunk `{"id","choices":[{"index","delta","finish_reason"}],"usage"?}` → unified chunk."""
    return {
        "id": event.get("id") or "",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {"index": c.get("index", 0), "delta": c.get("delta") or {}, "finish_reason": c.get("finish_reason")}
            for c in event.get("choices") or ()
        ],
    }


def to_completions_chunk(chunk: Mapping[str, Any]) -> dict:
    return {
        **chunk, "object": "text_completion",
        "choices": [{"index": c["index"], "text": c["delta"].get("content") or "", "finish_reason": c["finish_reason"]}
                    for c in chunk["choices"] if c["delta"].get("content") or c["finish_reason"]],
    }


# ----- transport ---------------------------------------------------------------------------


class AI21LabsProvider(BaseProvider):
    name = "ai21labs"
    display_name = LABEL
    config_schema = AI21Config
    base_url_key = "ai21labs_api_base"
    default_base_url = AI21_BASE

    @classmethod
    def check_model(cls, endpoint_type: str, model: str, config: Mapping[str, Any]) -> str | None:
        if is_legacy(model) and endpoint_type == CHAT:
            return f"{model} is a Jurassic-2 model: it serves llm/v1/completions only."
        return None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config['ai21labs_api_key']}"}

    def error_message(self, body: Any) -> str | None:
        # FastAPI envelope: {"detail": "..."} or {"detail": [{"loc": [...], "msg": "..."}]}.
        if isinstance(body, dict) and isinstance(body.get("detail"), list):
            return "; ".join(
                f"{'.'.join(map(str, d.get('loc') or []))}: {d.get('msg')}" if isinstance(d, dict) else str(d)
                for d in body["detail"]
            )
        return super().error_message(body)

    def _url(self, path: str) -> str:
        return f"{self.base_url(self.config)}/{path}"

    def chat(self, request: dict) -> dict:
        return chat_from_upstream(self.post_json(self._url("chat/completions"), chat_to_upstream(request, self.model)), self.model)

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        return self._stream(chat_to_upstream(request, self.model), request)

    def _stream(self, body: dict, request: Mapping[str, Any]) -> Iterator[dict]:
        with_usage = include_usage(request)
        resp = self.post_stream(self._url("chat/completions"), body)
        created, usage, last_id = shapes.now(), None, ""
        for event in self.iter_sse(resp):
            if event.data == "[DONE]":
                if with_usage:
                    yield {**chat_chunk({"id": last_id}, self.model, created), "usage": usage}
                return
            message = chunk_error(event.data)
            if message is not None:
                raise UpstreamError(f"The {LABEL} provider failed mid-stream: {self.redact(message)}")
            data = self.parse_event(event.data)
            if not isinstance(data, dict) or not isinstance(data.get("choices", []), list):
                raise UpstreamError(f"The {LABEL} provider sent a stream event that is not a chunk.")
            # AI21 puts usage on the last content chunk; OpenAI clients expect it only in the
            # separate `choices: []` chunk they asked for with stream_options.include_usage.
            usage = data.get("usage") or usage
            last_id = data.get("id") or last_id
            yield chat_chunk(data, self.model, created)
        raise UpstreamError(f"The {LABEL} provider's stream ended without [DONE].")

    def completions(self, request: dict) -> dict:
        if is_legacy(self.model):
            url = self._url(f"{self.model}/complete")
            return complete_from_upstream(self.post_json(url, complete_to_upstream(request)), self.model)
        body = completion_to_chat(request, self.model)
        return chat_as_completions(chat_from_upstream(self.post_json(self._url("chat/completions"), body), self.model))

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        if is_legacy(self.model):
            complete_to_upstream(request)  # raises: Jurassic-2 cannot stream
        return self._completions_stream(completion_to_chat(request, self.model), request)

    def _completions_stream(self, body: dict, request: Mapping[str, Any]) -> Iterator[dict]:
        for chunk in self._stream(body, request):
            out = to_completions_chunk(chunk)
            if out["choices"] or "usage" in out:  # role-only deltas carry no text
                yield out

