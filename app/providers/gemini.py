"""Google Gemini (Generative Language API) chat, completions and embeddings; `palm` as an alias."""
from __future__ import annotations

import re
from typing import Any, ClassVar, Iterator, Mapping

import requests

from app.config_fields import Secret, Url
from app.errors import GatewayError, UpstreamError
from app.providers import gemini_translate as wire
from app.providers.gemini_stream import StreamTranslator
from app.providers.base import BaseProvider, Chunk, ProviderConfig, map_status

GEMINI_BASE = "https://generativelanguage.googleapis.com/v1beta"
# A model id is one path segment (`gemini-2.0-flash`, `text-embedding-004`); `models/` is allowed.
_MODEL = re.compile(r"^(models/)?[A-Za-z0-9][A-Za-z0-9._-]*$")


class GeminiConfig(ProviderConfig):
    gemini_api_key = Secret(required=True)
    gemini_api_base = Url()


class PalmConfig(ProviderConfig):
    palm_api_key = Secret(required=True)
    palm_api_base = Url()


def retry_after(error: Mapping[str, Any]) -> str | None:
    """Seconds from `details[{"@type":"…google.rpc.RetryInfo","retryDelay":"32s"}]`, if any."""
    for detail in error.get("details") or ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str):
            match = re.fullmatch(r"(\d+)(?:\.\d+)?s", delay)
            if match:
                return str(int(match.group(1)) + (1 if "." in delay else 0))
    return None


def _reasons(error: Mapping[str, Any]) -> set[str]:
    return {d.get("reason") for d in error.get("details") or () if isinstance(d, dict) and d.get("reason")}


class GeminiProvider(BaseProvider):
    name = "gemini"
    display_name = "Gemini"
    config_schema = GeminiConfig
    base_url_key = "gemini_api_base"
    default_base_url = GEMINI_BASE
    key_field: ClassVar[str] = "gemini_api_key"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = self.base_url(self.config)
        self.model_id = self.model.removeprefix("models/")

    @classmethod
    def check_model(cls, endpoint_type: str, model: str, config: Mapping[str, Any]) -> str | None:
        if not _MODEL.match(model):
            return f"'{model}' is not a {cls.display_name} model id (like gemini-2.0-flash)."
        return None

    def headers(self) -> dict[str, str]:
        # The key goes in a header, never in `?key=`: URLs end up in logs and error messages.
        return {"x-goog-api-key": self.config[self.key_field]}

    def _url(self, method: str) -> str:
        return f"{self.base}/models/{self.model_id}:{method}"

    # ----- errors: {"error":{"code":429,"message","status":"RESOURCE_EXHAUSTED","details":[…]}} -----

    def upstream_error(self, resp: requests.Response) -> GatewayError:
        try:
            body = resp.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return super().upstream_error(resp)
        message = self.redact(str(error.get("message") or f"HTTP {resp.status_code}"))
        status, code = resp.status_code, error.get("status") if isinstance(error.get("status"), str) else None
        headers = dict(resp.headers)
        if "API_KEY_INVALID" in _reasons(error):
            # Google answers a bad key with 400 INVALID_ARGUMENT; to clients it is an auth failure.
            status, code = 401, "invalid_api_key"
        if status == 429 and not resp.headers.get("Retry-After") and retry_after(error):
            headers["Retry-After"] = retry_after(error)
        return map_status(status, message, self._label(), headers, code=code)

    # ----- calls -------------------------------------------------------------------------------

    def _stream(self, body: dict, chat: bool) -> Iterator[Chunk]:
        resp = self.post_stream(self._url("streamGenerateContent"), body, params={"alt": "sse"})
        translator = StreamTranslator(self.model_id, chat)
        for event in self.iter_sse(resp):
            if not event.data.strip():
                continue
            data = self.parse_event(event.data)
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                message = self.redact(str(data["error"].get("message") or "unknown error"))
                raise UpstreamError(f"The {self._label()} provider failed mid-stream: {message}")
            yield from translator.feed(data)
        last = translator.finish(self._label())  # EOF is Gemini's only end marker
        if last is not None:
            yield last

    def chat(self, request: dict) -> dict:
        body = wire.chat_to_upstream(request, self._label())
        return wire.chat_from_upstream(self.post_json(self._url("generateContent"), body), self.model_id, self._label())

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        return self._stream(wire.chat_to_upstream(request, self._label()), chat=True)

    def completions(self, request: dict) -> dict:
        body = wire.completions_to_upstream(request, self._label())
        reply = self.post_json(self._url("generateContent"), body)
        return wire.completions_from_upstream(reply, self.model_id, self._label())

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        return self._stream(wire.completions_to_upstream(request, self._label()), chat=False)

    def embeddings(self, request: dict) -> dict:
        method, body = wire.embeddings_to_upstream(request, self.model_id, self._label())
        return wire.embeddings_from_upstream(self.post_json(self._url(method), body), self.model_id)


class PalmProvider(GeminiProvider):
    """`provider: palm` configs keep working: the PaLM API is shut down, so calls go to Gemini's."""

    name = "palm"
    display_name = "PaLM (Gemini API)"
    config_schema = PalmConfig
    base_url_key = "palm_api_base"
    key_field = "palm_api_key"
