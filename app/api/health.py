"""Liveness: GET /health."""
from flask import Blueprint, Response

from app.api.dispatch import json_response

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    return json_response({"status": "OK"})
