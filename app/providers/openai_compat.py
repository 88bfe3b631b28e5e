"""Shared base for OpenAI-compatible vendors (Mistral, Together): bearer auth, SSE + [DONE], helpers."""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

from app.errors import InvalidRequest, UpstreamError
from app.providers.base import BaseProvider, Chunk
from app.providers.openai import chunk_error
from app.schemas import shapes

# Keys of the unified request that are routing or framing, never sent as vendor parameters.
FRAMING = frozenset({"model", "stream", "stream_options"})


# ----- translation helpers (pure) ----------------------------------------------------------


def reject_unknown(request: Mapping[str, Any], allowed: Iterable[str], label: str) -> None:
    """Every key the vendor cannot honour is an error naming the parameter and the provider."""
    allowed = set(allowed) | FRAMING
    for key in request:
        if key not in allowed:
            raise InvalidRequest(
                f"The parameter '{key}' is not supported by the {label} provider.", param=key
            )


def max_tokens(request: Mapping[str, Any]) -> int | None:
    """OpenAI's `max_completion_tokens` (current) wins over the deprecated `max_tokens`."""
    return request.get("max_completion_tokens") or request.get("max_tokens")


def single_prompt(request: Mapping[str, Any], label: str) -> str:
    """The one prompt of a completions request; several prompts cannot go in one upstream call."""
    prompt = request["prompt"]
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise InvalidRequest(
                f"The {label} provider takes one prompt per request; 'prompt' has {len(prompt)}.",
                param="prompt",
            )
        return prompt[0]
    return prompt


def tool_names(messages: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Tool-call id -> function name, from the assistant turns (tool results need the name)."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call["id"]] = call["function"]["name"]
    return names


def tool_name(names: Mapping[str, str], message: Mapping[str, Any], index: int, label: str) -> str:
    """The function name a tool result answers; the vendor needs it, OpenAI's shape only has the id."""
    call_id = message["tool_call_id"]
    if call_id not in names:
        raise InvalidRequest(
            f"messages[{index}].tool_call_id '{call_id}' matches no earlier assistant tool call; the "
            f"{label} provider needs that call's function name.",
            param=f"messages[{index}].tool_call_id",
        )
    return names[call_id]


def text_of(content: Any) -> str:
    """A message's text: the string, or its text parts joined (other parts rejected by callers)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def usage(raw: Any) -> dict | None:
    """OpenAI-named `usage{prompt_tokens,completion_tokens,total_tokens}`, or None when absent."""
    if not isinstance(raw, dict):
        return None
    return shapes.usage(raw.get("prompt_tokens"), raw.get("completion_tokens"), raw.get("total_tokens"))


def embeddings_reply(body: Mapping[str, Any], model: str) -> dict:
    """`{"data":[{"embedding","index"}],"model","usage"?}` -> unified embeddings (usage may be absent)."""
    data = sorted(body.get("data") or (), key=lambda d: d.get("index", 0))
    raw = body.get("usage")
    return shapes.embeddings_response(
        model=body.get("model") or model, vectors=[d["embedding"] for d in data],
        usage={"prompt_tokens": raw.get("prompt_tokens"), "total_tokens": raw.get("total_tokens")}
        if isinstance(raw, dict) else None,
    )


# ----- transport ---------------------------------------------------------------------------


class OpenAICompatible(BaseProvider):
    """Bearer-key vendors that speak OpenAI's JSON and SSE framing with their own dialect.

    Subclasses set `key_field` and translate with pure functions; this class only moves bytes:
    `data: {json}` events until `data: [DONE]`, `data: {"error": ...}` as a mid-stream failure,
    and EOF before [DONE] as a truncated stream.
    """

    key_field: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = self.base_url(self.config)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config[self.key_field]}"}

    def call(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.post_json(f"{self.base}/{path}", body)

    def stream(
        self, path: str, body: Mapping[str, Any], translate: Callable[[dict], dict | None]
    ) -> Iterator[Chunk]:
        """POST a streaming body and yield translate(event) for each data event."""
        resp = self.post_stream(f"{self.base}/{path}", {**body, "stream": True})
        for event in self.iter_sse(resp):
            data = event.data
            if not data:
                continue
            if data.strip() == "[DONE]":
                return
            message = chunk_error(data)
            if message is not None:
                raise UpstreamError(
                    f"The {self._label()} provider failed mid-stream: {self.redact(message)}"
                )
            try:
                chunk = translate(self.parse_event(data))
            except UpstreamError as exc:  # translation saw an in-band failure; keep keys out of it
                raise UpstreamError(self.redact(exc.message)) from None
            if chunk is not None:
                yield chunk
        raise UpstreamError(f"The {self._label()} provider's stream ended without [DONE].")
