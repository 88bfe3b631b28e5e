"""`openai-compatible-example`: chat (plain and streamed) with any OpenAI-compatible server.

Servers such as vLLM, llama.cpp's `llama-server` or LM Studio expose `POST {api_base}/chat/completions`
in OpenAI's shape. This plugin shows the whole provider contract in one small file: a config
schema with a secret, translation kept apart from transport, parameters it cannot honour
refused, upstream errors left to the base class, and a stream that must end with `[DONE]`.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from marshmallow import validate

from app.config_fields import Secret, Text
from app.errors import InvalidRequest, UpstreamError
from app.providers.base import BaseProvider, Chunk, ProviderConfig

# What this plugin forwards; every other request key is refused by name, never dropped.
SUPPORTED = {"messages", "temperature", "top_p", "max_tokens", "stop", "stream", "seed"}


class CompatConfig(ProviderConfig):
    """`model.config` for this provider; unknown keys are load errors (ProviderConfig)."""

    api_base = Text(required=True, validate=validate.URL(require_tld=False, schemes={"http", "https"}))
    api_key = Secret()  # optional; `$VAR`, a file path or a literal


def to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified chat request → `{"model", "messages", "temperature"?, ...}` (OpenAI chat body)."""
    for key in request:
        if key not in SUPPORTED:
            raise InvalidRequest(
                f"'{key}' is not supported by the openai-compatible-example provider.", param=key
            )
    return {**request, "model": model}


def from_upstream(body: dict, model: str) -> dict:
    """OpenAI chat reply → the unified reply: the gateway's model name, usage always present."""
    return {**body, "model": model, "usage": body.get("usage")}


class CompatChatProvider(BaseProvider):
    name = "openai-compatible-example"
    display_name = "OpenAI-compatible (example plugin)"
    config_schema = CompatConfig
    base_url_key = "api_base"

    def headers(self) -> dict[str, str]:
        key = self.config.get("api_key")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _url(self) -> str:
        return f"{self.base_url(self.config)}/chat/completions"

    def chat(self, request: dict) -> dict:
        return from_upstream(self.post_json(self._url(), to_upstream(request, self.model)), self.model)

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        body = to_upstream(request, self.model)  # refuse bad input before any network call
        return self._stream(body)

    def _stream(self, body: dict) -> Iterator[Chunk]:
        resp = self.post_stream(self._url(), body)
        for event in self.iter_sse(resp):
            if event.data == "[DONE]":
                return
            chunk = self.parse_event(event.data)
            if "error" in chunk:
                raise UpstreamError(f"The upstream server failed mid-stream: {self.redact(str(chunk['error']))}")
            yield {**chunk, "model": self.model}
        raise UpstreamError("The upstream server's stream ended without [DONE].")
