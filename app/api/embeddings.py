"""OpenAI-compatible embeddings route: POST /v1/embeddings."""
from flask import Blueprint, Response

from app.api.dispatch import openai_call
from app.schemas import EMBEDDINGS

bp = Blueprint("embeddings", __name__)


@bp.post("/v1/embeddings")
def embeddings() -> Response:
    return openai_call(EMBEDDINGS)
