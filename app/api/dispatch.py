"""Shared request handling: read JSON, validate with the endpoint type's schema, call, respond."""
from __future__ import annotations

import json
from itertools import chain
from typing import Any, Callable

from flask import Response, current_app, request
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from app import sse
from app.limits import enforce
from app.api.errors import openai_body
from app.errors import GatewayError, InvalidRequest, NotFound
from app.gateway import Gateway, Live
from app.schemas import CHAT, COMPLETIONS, EMBEDDINGS, REQUEST_SCHEMAS
from app.schemas.base import flatten_errors
from app.schemas.fast import plain_chat

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_CALLS = {CHAT: "chat", COMPLETIONS: "completions", EMBEDDINGS: "embeddings"}


def gateway() -> Gateway:
    return current_app.extensions["ai_gateway"]


def lookup(name: str) -> Live:
    live = gateway().get(name)
    if live is None:
        raise NotFound(f"The endpoint {name!r} does not exist.", code="endpoint_not_found")
    return live


def read_json() -> dict:
    """The request body as a JSON object (413 past the size limit, 400/422 when malformed)."""
    raw = _body()
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return payload


def _body() -> bytes:
    """The raw body: straight from the server's input for a plain Content-Length body (what
    `get_data` does through two wrapper streams), through werkzeug for anything else."""
    environ = request.environ
    length = request.content_length
    if length is None or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return request.get_data(cache=False)
    limit = request.max_content_length
    if limit is not None and length > limit:
        raise RequestEntityTooLarge()
    raw = environ["wsgi.input"].read(length) if length else b""
    if len(raw) < length:  # the client went away mid-body (werkzeug raises the same way)
        raise InvalidRequest("The request body is shorter than its Content-Length.")
    return raw


def validate(endpoint_type: str, payload: dict) -> dict:
    if endpoint_type == CHAT:
        plain = plain_chat(payload)
        if plain is not None:
            return plain
    try:
        return REQUEST_SCHEMAS[endpoint_type].load(payload)
    except ValidationError as exc:
        problems = flatten_errors(exc.messages)
        text = "; ".join(f"{path}: {msg}" if path else msg for path, msg in problems)
        raise InvalidRequest(f"Invalid request: {text}", param=problems[0][0] or None) from None


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_dumps(body), status=status, mimetype="application/json")


def _error_event(exc: GatewayError) -> dict:
    return openai_body(exc)


def invoke(live: Live, payload: dict) -> Response:
    """Run one validated call on an endpoint; streams come back as server-sent events."""
    enforce(live.endpoint)  # counts once per call, stream or not, whatever the route
    endpoint_type = live.endpoint.endpoint_type
    req = validate(endpoint_type, payload)
    method = _CALLS[endpoint_type]
    if not req.get("stream"):
        return json_response(getattr(live.provider, method)(req))
    if endpoint_type == EMBEDDINGS:
        raise InvalidRequest("Embeddings cannot be streamed.", param="stream")
    chunks = iter(getattr(live.provider, method + "_stream")(req))
    # Pull the first chunk before answering, so an upstream refusal keeps its own HTTP status.
    try:
        first: list = [next(chunks)]
    except StopIteration:
        first = []
    return Response(
        sse.stream(_Chained(first, chunks), _error_event),
        mimetype="text/event-stream",
        headers=sse.STREAM_HEADERS,
    )


class _Chained:
    """`chain(first, rest)` that forwards close() to the provider's generator."""

    def __init__(self, first: list, rest: Any) -> None:
        self._it = chain(first, rest)
        self._rest = rest

    def __iter__(self) -> "_Chained":
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def close(self) -> None:
        close: Callable[[], None] | None = getattr(self._rest, "close", None)
        if close is not None:
            close()


def openai_call(endpoint_type: str) -> Response:
    """An OpenAI-style call: `model` in the body names the gateway endpoint."""
    payload = read_json()
    name = payload.pop("model", None)
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'model' is required: the name of a gateway endpoint.", param="model")
    live = lookup(name)
    if live.endpoint.endpoint_type != endpoint_type:
        raise InvalidRequest(
            f"The endpoint {name!r} is of type {live.endpoint.endpoint_type}, not {endpoint_type}.",
            param="model",
        )
    return invoke(live, payload)
