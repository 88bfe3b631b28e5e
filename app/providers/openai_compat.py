"""Shared base for OpenAI-compatible vendors (Mistral, Together): bearer auth, SSE + [DONE], helpers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Mapping

from app.errors import UpstreamError
from app.providers.base import BaseProvider, Chunk
from app.providers.openai import chunk_error
from app.schemas import shapes

# ----- translation helpers (pure): the OpenAI reply dialect these vendors share ---------------


def usage(raw: Any) -> dict | None:
    """OpenAI-named `usage{prompt_tokens,completion_tokens,total_tokens}`, or None when absent."""
    if not isinstance(raw, dict):
        return None
    return shapes.usage(raw.get("prompt_tokens"), raw.get("completion_tokens"), raw.get("total_tokens"))


def reply_fields(body: Mapping[str, Any], model: str) -> dict:
    """`model`, `usage`, `id`, `created` of a `{"id","created","model","choices","usage"}` reply."""
    return {"model": body.get("model") or model, "usage": usage(body.get("usage")),
            "id": body.get("id"), "created": body.get("created")}


def chunk_envelope(event: Mapping[str, Any], model: str, kind: str, choices: list[dict]) -> dict:
    """Translated `choices` in a unified chunk `{"id","object":kind,"created","model","choices","usage"?}`."""
    chunk = {
        "id": event.get("id") or "", "object": kind, "created": event.get("created") or shapes.now(),
        "model": event.get("model") or model, "choices": choices,
    }
    if event.get("usage"):
        chunk["usage"] = usage(event["usage"])
    return chunk


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


Translate = Callable[[Mapping[str, Any], str], dict]


@dataclass(frozen=True)
class Translation:
    """A vendor module's pure functions (each takes the body or event and the model name)."""

    chat_to_upstream: Translate
    chat_from_upstream: Translate
    chat_chunk: Translate
    completions_to_upstream: Translate
    completions_from_upstream: Translate
    completions_chunk: Translate
    embeddings_to_upstream: Translate
    embeddings_from_upstream: Translate


class OpenAICompatible(BaseProvider):
    """Bearer-key vendors that speak OpenAI's JSON and SSE framing with their own dialect.

    Subclasses set `key_field` and translate with pure functions; this class only moves bytes:
    `data: {json}` events until `data: [DONE]`, `data: {"error": ...}` as a mid-stream failure,
    and EOF before [DONE] as a truncated stream.
    """

    key_field: ClassVar[str] = ""
    translation: ClassVar[Translation]
    completions_path: ClassVar[str] = "completions"  # Mistral serves completions via chat

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

    def chat(self, request: dict) -> dict:
        t = self.translation
        return t.chat_from_upstream(self.call("chat/completions", t.chat_to_upstream(request, self.model)), self.model)

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        t = self.translation
        body = t.chat_to_upstream(request, self.model)
        return self.stream("chat/completions", body, lambda e: t.chat_chunk(e, self.model))

    def completions(self, request: dict) -> dict:
        t = self.translation
        body = t.completions_to_upstream(request, self.model)
        return t.completions_from_upstream(self.call(self.completions_path, body), self.model)

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        t = self.translation
        body = t.completions_to_upstream(request, self.model)
        return self.stream(self.completions_path, body, lambda e: t.completions_chunk(e, self.model))

    def embeddings(self, request: dict) -> dict:
        t = self.translation
        body = t.embeddings_to_upstream(request, self.model)
        return t.embeddings_from_upstream(self.call("embeddings", body), self.model)
