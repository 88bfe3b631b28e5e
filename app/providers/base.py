"""The provider contract (`BaseProvider`) and the shared transport every provider uses."""
from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Iterator, Mapping

import requests
import sseclient
from marshmallow import RAISE, Schema

from app.errors import (
    GatewayError,
    NotSupported,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.http import Timeout, lean_post

CHAT = "llm/v1/chat"
COMPLETIONS = "llm/v1/completions"
EMBEDDINGS = "llm/v1/embeddings"

# A stream yields chunks: dicts in the unified chunk shape, or strings that already are the
# JSON text of such a chunk (lets OpenAI-compatible providers forward bytes untouched).
Chunk = dict | str

_MASKED = re.compile(r"\S*\*{3,}\S*")
# Seconds `finish` waits for the end of a stream's body after its terminal event.
FINISH_WAIT = 0.1


class ProviderConfig(Schema):
    """Base for a provider's `model.config` schema: unknown keys are load errors."""

    class Meta:
        unknown = RAISE


class BaseProvider:
    """What every provider implements; plugin authors subclass this.

    Class attributes:
      name: the `model.provider` value in the YAML (also the entry-point name for plugins).
      config_schema: a `ProviderConfig` subclass validating `model.config`; use
        `app.config_fields.Secret` for keys (resolved from `$VAR`, a file path or a literal).
      base_url_key / default_base_url: where upstream calls go; used to size the session.

    Capabilities: override any of `chat`, `chat_stream`, `completions`, `completions_stream`,
    `embeddings`. The endpoint types a provider supports are the ones whose method it overrides;
    config load rejects the rest. Requests arrive as validated dicts in the unified (OpenAI)
    shape; return dicts in the unified response shapes (`app.schemas.shapes` builds them) and
    yield unified chunks from the `*_stream` methods.

    Errors: raise `app.errors.InvalidRequest` (naming the parameter) for input the provider
    cannot honour, and let `post_json` / `post_stream` map upstream failures. Never put a key
    in a message. Override `error_message` to read the provider's error envelope.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    config_schema: ClassVar[type[ProviderConfig]] = ProviderConfig
    base_url_key: ClassVar[str | None] = None
    default_base_url: ClassVar[str] = ""

    def __init__(
        self,
        model: str,
        config: Mapping[str, Any],
        *,
        session: requests.Session,
        timeout: Timeout = Timeout(),
        endpoint_type: str = CHAT,
    ) -> None:
        self.model = model
        self.config = dict(config)
        self.session = session
        self.timeout = timeout.as_tuple()
        self.endpoint_type = endpoint_type
        self._secrets = [
            str(config[k])
            for k, f in self.config_schema().fields.items()
            if f.metadata.get("secret") and config.get(k)
        ]

    # ----- what the provider can do -------------------------------------------------------

    @classmethod
    def supported_types(cls) -> frozenset[str]:
        """Endpoint types this provider serves: those whose method the class overrides."""
        found = set()
        for kind, method in ((CHAT, "chat"), (COMPLETIONS, "completions"), (EMBEDDINGS, "embeddings")):
            if getattr(cls, method) is not getattr(BaseProvider, method):
                found.add(kind)
        return frozenset(found)

    @classmethod
    def base_url(cls, config: Mapping[str, Any]) -> str:
        if cls.base_url_key and config.get(cls.base_url_key):
            return str(config[cls.base_url_key]).rstrip("/")
        return cls.default_base_url.rstrip("/")

    @classmethod
    def check_model(cls, endpoint_type: str, model: str, config: Mapping[str, Any]) -> str | None:
        """Return a reason when this model cannot serve this endpoint type (checked at load)."""
        return None

    def _label(self) -> str:
        return self.display_name or self.name or type(self).__name__

    def _unsupported(self, what: str) -> NotSupported:
        return NotSupported(f"{what} is not supported by the {self._label()} provider.")

    def chat(self, request: dict) -> dict:
        raise self._unsupported("Chat")

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        raise self._unsupported("Streaming chat")

    def completions(self, request: dict) -> dict:
        raise self._unsupported("Completions")

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        raise self._unsupported("Streaming completions")

    def embeddings(self, request: dict) -> dict:
        raise self._unsupported("Embeddings")

    # ----- transport -----------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """Auth and version headers sent on every call."""
        return {}

    def post_json(
        self, url: str, body: Any, *, headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """POST JSON and return the parsed JSON reply, mapping every failure to a GatewayError."""
        resp = self._send(url, body, headers, params, stream=False)
        try:
            if resp.status_code >= 400:
                raise self.upstream_error(resp)
            try:
                return json.loads(resp.content)  # bytes: json detects the UTF encoding itself
            except ValueError:
                raise UpstreamError(
                    f"The {self._label()} provider returned a reply that is not JSON."
                ) from None
        finally:
            resp.close()

    def post_stream(
        self, url: str, body: Any, *, headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """POST and return the open streaming response (status already checked)."""
        resp = self._send(url, body, headers, params, stream=True)
        if resp.status_code >= 400:
            try:
                raise self.upstream_error(resp)
            finally:
                resp.close()
        return resp

    def _send(
        self, url: str, body: Any, headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None, *, stream: bool,
    ) -> requests.Response:
        all_headers = self.headers()
        if headers:
            all_headers.update(headers)
        try:
            return lean_post(
                self.session, url, json.dumps(body, separators=(",", ":")).encode(),
                {"Content-Type": "application/json", **all_headers}, params, self.timeout, stream,
            )
        except requests.Timeout:
            raise UpstreamTimeout(f"The {self._label()} provider did not answer in time.") from None
        except requests.RequestException as exc:
            raise UpstreamError(
                f"Could not reach the {self._label()} provider ({type(exc).__name__})."
            ) from None

    def iter_sse(self, resp: requests.Response) -> Iterator[sseclient.Event]:
        """Server-sent events from an open response; closes it when done or abandoned."""
        try:
            for event in sseclient.SSEClient(self._iter_bytes(resp)).events():
                yield event
        finally:
            resp.close()

    def finish(self, resp: requests.Response) -> None:
        """Call at the stream's terminal event: read the end of the body to keep the connection.

        A provider stops at its terminal event while the last (empty) chunk of the HTTP body is
        still unread; closing then drops the connection, and the next stream pays a new TCP
        (and TLS) handshake. Reading that tail lets urllib3 return the connection to the pool.
        The wait is bounded: an upstream that sends more, or nothing, is closed as before.
        """
        raw = resp.raw
        lean_finish = getattr(raw, "finish", None)
        if lean_finish is not None:  # the gateway's own transport (app.transport.Body)
            if not lean_finish(FINISH_WAIT):
                resp.close()
            return
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        try:
            if sock is not None:
                sock.settimeout(FINISH_WAIT)  # the pool sets the read timeout again on reuse
            if raw.read(1024, decode_content=False):
                resp.close()  # more than the end of the body: not a connection to reuse
        except Exception:  # any failure here only means the connection is not reused
            resp.close()

    def iter_ndjson(self, resp: requests.Response) -> Iterator[Any]:
        """One parsed JSON value per line (NDJSON streams); closes the response when done."""
        try:
            for line in resp.iter_lines(chunk_size=None):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        raise UpstreamError(
                            f"The {self._label()} provider sent a stream line that is not JSON."
                        ) from None
        finally:
            resp.close()

    def _iter_bytes(self, resp: requests.Response) -> Iterator[bytes]:
        try:
            yield from resp.iter_content(chunk_size=None)
        except requests.Timeout:
            raise UpstreamTimeout(f"The {self._label()} provider stopped sending.") from None
        except requests.RequestException:
            raise UpstreamError(f"The {self._label()} provider's stream broke off.") from None

    def parse_event(self, data: str) -> Any:
        """Parse one stream event's JSON data or raise a clean upstream error."""
        try:
            return json.loads(data)
        except ValueError:
            raise UpstreamError(f"The {self._label()} provider sent stream data that is not JSON.") from None

    # ----- errors --------------------------------------------------------------------------

    def error_message(self, body: Any) -> str | None:
        """Pull the human message out of the provider's error body (override per provider)."""
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                return err["message"]
            if isinstance(err, str):
                return err
            for key in ("message", "detail", "error_message"):
                if isinstance(body.get(key), str):
                    return body[key]
        return None

    def secret_values(self) -> list[str]:
        """This endpoint's resolved secrets (the log filter scrubs them everywhere)."""
        return list(self._secrets)

    def redact(self, text: str) -> str:
        """Remove this endpoint's secrets and provider-masked keys (`sk-ab***yz`) from text."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _MASKED.sub("[redacted]", text)

    def error_detail(self, resp: requests.Response) -> tuple[Any, str]:
        """(parsed error body or None, redacted human detail) of an upstream error reply."""
        try:
            body = resp.json()
        except ValueError:
            body = None
        detail = self.error_message(body) or (resp.text[:500].strip() if body is None else None)
        return body, (self.redact(detail) if detail else f"HTTP {resp.status_code}")

    def upstream_error(self, resp: requests.Response) -> GatewayError:
        """Map an upstream HTTP error: 4xx kept, 429 with Retry-After, 503/529 → 503, else 502."""
        status = resp.status_code
        body, detail = self.error_detail(resp)
        err = body.get("error") if isinstance(body, dict) else None
        code = err.get("code") if isinstance(err, dict) and isinstance(err.get("code"), str) else None
        param = err.get("param") if isinstance(err, dict) and isinstance(err.get("param"), str) else None
        return map_status(status, detail, self._label(), resp.headers, code=code, param=param)


def map_status(
    status: int, detail: str, label: str, headers: Mapping[str, str] | None = None,
    *, code: str | None = None, param: str | None = None,
) -> GatewayError:
    """The documented status mapping for an upstream failure."""
    headers = headers or {}
    if status == 429:
        retry = {"Retry-After": headers["Retry-After"]} if headers.get("Retry-After") else {}
        return UpstreamError(detail, status=429, type="rate_limit_exceeded", code=code or "rate_limit_exceeded", headers=retry)
    if status in (408, 504):
        return UpstreamTimeout(f"The {label} provider timed out: {detail}")
    if 400 <= status < 500:
        return UpstreamError(detail, status=status, type="invalid_request_error", code=code, param=param)
    if status in (503, 529):
        return UpstreamUnavailable(f"The {label} provider is overloaded or unavailable: {detail}")
    return UpstreamError(f"The {label} provider failed (HTTP {status}): {detail}")
