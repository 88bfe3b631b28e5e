"""OpenAI-compatible completions route: POST /v1/completions."""
from flask import Blueprint, Response

from app.api.dispatch import openai_call
from app.schemas import COMPLETIONS

bp = Blueprint("completions", __name__)


@bp.post("/v1/completions")
def completions() -> Response:
    return openai_call(COMPLETIONS)
