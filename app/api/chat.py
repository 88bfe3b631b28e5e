"""OpenAI-compatible chat route: POST /v1/chat/completions."""
from flask import Blueprint, Response

from app.api.dispatch import openai_call
from app.schemas import CHAT

bp = Blueprint("chat", __name__)


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    return openai_call(CHAT)
