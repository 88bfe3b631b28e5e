"""Endpoint listings: MLflow's /api/2.0/endpoints (paged) and OpenAI's /v1/models."""
from __future__ import annotations

import base64
import binascii

from flask import Blueprint, Response, current_app, request

from app.api.dispatch import gateway, json_response, lookup
from app.errors import InvalidRequest

bp = Blueprint("endpoints", __name__)


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode(token: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        offset = int(value)
    except (binascii.Error, UnicodeError, ValueError):
        offset, kind = -1, ""
    if kind != "offset" or offset < 0:
        raise InvalidRequest("page_token is not a token this gateway handed out.", param="page_token")
    return offset


@bp.get("/api/2.0/endpoints")
@bp.get("/api/2.0/endpoints/")
def list_endpoints() -> Response:
    token = request.args.get("page_token")
    start = _decode(token) if token else 0
    size = current_app.config["AI_GATEWAY_PAGE_SIZE"]
    items = gateway().all()
    page = items[start : start + size]
    more = start + size < len(items)
    return json_response({
        "endpoints": [live.endpoint.public() for live in page],
        "next_page_token": _encode(start + size) if more else None,
    })


@bp.get("/api/2.0/endpoints/<name>")
def get_endpoint(name: str) -> Response:
    return json_response(lookup(name).endpoint.public())


def _model(live) -> dict:  # type: ignore[no-untyped-def]
    return {"id": live.endpoint.name, "object": "model", "created": 0, "owned_by": live.endpoint.provider}


@bp.get("/v1/models")
def list_models() -> Response:
    return json_response({"object": "list", "data": [_model(live) for live in gateway().all()]})


@bp.get("/v1/models/<name>")
def get_model(name: str) -> Response:
    return json_response(_model(lookup(name)))
