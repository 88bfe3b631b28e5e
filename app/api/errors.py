"""The one place that renders errors: OpenAI's envelope on /v1, MLflow's `{"detail"}` elsewhere."""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from app.errors import GatewayError, InvalidRequest, RateLimited

log = logging.getLogger("ai_gateway")

_HTTP_TYPES = {404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error"}


def openai_body(exc: GatewayError) -> dict:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}


def is_openai_route() -> bool:
    return request.path.startswith("/v1/")


def render(exc: GatewayError) -> Response:
    """The JSON response for a gateway error in the family of the current route."""
    status = exc.status
    if is_openai_route():
        body: dict = openai_body(exc)
    elif isinstance(exc, RateLimited):
        body = {"error": exc.message}
    else:
        if isinstance(exc, InvalidRequest):
            status = 422  # MLflow's gateway answers invalid input with 422, as FastAPI does
        body = {"detail": exc.message}
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    for name, value in exc.headers.items():
        response.headers[name] = value
    return response


def _from_http(exc: HTTPException) -> GatewayError:
    status = exc.code or 500
    if status == 413:
        message = "The request body is larger than this gateway accepts."
    elif status == 404:
        message = f"No route {request.method} {request.path}."
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.path}."
    else:
        message = exc.description or exc.name
    err = GatewayError(message, status=status, type=_HTTP_TYPES.get(status, "invalid_request_error"))
    if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        err.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    if status == 429:
        return RateLimited(message, headers=err.headers)
    return err


def register(app: Flask) -> None:
    @app.errorhandler(GatewayError)
    def _gateway(exc: GatewayError) -> Response:
        if exc.status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.path, exc.status, exc.message)
        return render(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return render(_from_http(exc))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return render(GatewayError("The gateway failed to handle this request.", status=500))
