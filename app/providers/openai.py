"""OpenAI, Azure OpenAI and any OpenAI-compatible server: chat, completions, embeddings."""
from __future__ import annotations

import json
from typing import Any, Iterator, Mapping

from marshmallow import ValidationError, validate, validates_schema

from app.config_fields import Secret, Text, Url
from app.errors import UpstreamError
from app.providers.base import BaseProvider, Chunk, ProviderConfig

OPENAI_BASE = "https://api.openai.com/v1"
API_TYPES = ("openai", "azure", "azuread")


class OpenAIConfig(ProviderConfig):
    openai_api_key = Secret(required=True)
    openai_api_type = Text(load_default="openai", validate=validate.OneOf(API_TYPES))
    openai_api_base = Url()
    openai_api_version = Text()
    openai_deployment_name = Text()
    openai_organization = Text()

    @validates_schema
    def _azure_needs(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("openai_api_type", "openai") in ("azure", "azuread"):
            missing = [
                k for k in ("openai_api_base", "openai_api_version", "openai_deployment_name")
                if not data.get(k)
            ]
            if missing:
                raise ValidationError(
                    {k: [f"Required when openai_api_type is {data['openai_api_type']}."] for k in missing}
                )


# ----- translation (pure) ------------------------------------------------------------------
# The unified shapes are OpenAI's own (platform.openai.com/docs/api-reference/chat), so the
# request goes out as the client sent it, with the configured model, and replies come back
# nearly untouched.


def to_upstream(request: Mapping[str, Any], model: str | None) -> dict:
    """Unified request → OpenAI body; Azure deployments pick the model, so model is omitted."""
    body = dict(request)
    if model is not None:
        body["model"] = model
    return body


def finish_reason(value: Any) -> Any:
    # `function_call` is the deprecated name of `tool_calls` (openai-python chat_completion.py).
    return "tool_calls" if value == "function_call" else value


def from_upstream(body: dict) -> dict:
    """OpenAI reply → unified reply: only the deprecated finish reason needs renaming."""
    for choice in body.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") == "function_call":
            choice["finish_reason"] = "tool_calls"
    body.setdefault("usage", None)
    return body


def chunk_error(data: str) -> str | None:
    """`data: {"error": {...}}` after a 200 is OpenAI's mid-stream failure; return its message."""
    if '"error"' not in data:
        return None
    try:
        err = json.loads(data).get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(err, dict):
        return str(err.get("message") or "unknown error")
    return str(err) if err else None


# ----- transport ---------------------------------------------------------------------------


class OpenAIProvider(BaseProvider):
    name = "openai"
    display_name = "OpenAI"
    config_schema = OpenAIConfig
    base_url_key = "openai_api_base"
    default_base_url = OPENAI_BASE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_type = self.config.get("openai_api_type", "openai")
        self.base = self.base_url(self.config)
        if self.api_type != "openai":
            self.display_name = "Azure OpenAI"
        self._headers = self._auth_headers()

    def _auth_headers(self) -> dict[str, str]:
        key = self.config["openai_api_key"]
        if self.api_type == "azure":
            return {"api-key": key}
        headers = {"Authorization": f"Bearer {key}"}
        if self.config.get("openai_organization"):
            headers["OpenAI-Organization"] = self.config["openai_organization"]
        return headers

    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    def _url(self, path: str) -> tuple[str, dict[str, str] | None]:
        if self.api_type == "openai":
            return f"{self.base}/{path}", None
        deployment = self.config["openai_deployment_name"]
        return (
            f"{self.base}/openai/deployments/{deployment}/{path}",
            {"api-version": self.config["openai_api_version"]},
        )

    def _model(self) -> str | None:
        return self.model if self.api_type == "openai" else None

    def _call(self, path: str, request: Mapping[str, Any]) -> dict:
        url, params = self._url(path)
        return from_upstream(self.post_json(url, to_upstream(request, self._model()), params=params))

    def _stream(self, path: str, request: Mapping[str, Any]) -> Iterator[Chunk]:
        url, params = self._url(path)
        resp = self.post_stream(url, to_upstream(request, self._model()), params=params)
        for event in self.iter_sse(resp):
            data = event.data
            if data == "[DONE]":
                self.finish(resp)
                return
            message = chunk_error(data)
            if message is not None:
                raise UpstreamError(f"The {self._label()} provider failed mid-stream: {self.redact(message)}")
            if '"function_call"' in data:
                yield from_upstream(self.parse_event(data))
            else:
                yield data
        raise UpstreamError(f"The {self._label()} provider's stream ended without [DONE].")

    def chat(self, request: dict) -> dict:
        return self._call("chat/completions", request)

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        return self._stream("chat/completions", request)

    def completions(self, request: dict) -> dict:
        return self._call("completions", request)

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        return self._stream("completions", request)

    def embeddings(self, request: dict) -> dict:
        return self._call("embeddings", request)
