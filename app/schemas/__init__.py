"""Unified request and response shapes, one module per endpoint type."""
from app.schemas.chat import ChatRequest
from app.schemas.completions import CompletionsRequest
from app.schemas.embeddings import EmbeddingsRequest

CHAT = "llm/v1/chat"
COMPLETIONS = "llm/v1/completions"
EMBEDDINGS = "llm/v1/embeddings"
ENDPOINT_TYPES = (CHAT, COMPLETIONS, EMBEDDINGS)

# One schema instance per type, built once: marshmallow schemas are reusable and thread-safe.
REQUEST_SCHEMAS = {
    CHAT: ChatRequest(),
    COMPLETIONS: CompletionsRequest(),
    EMBEDDINGS: EmbeddingsRequest(),
}

__all__ = ["CHAT", "COMPLETIONS", "EMBEDDINGS", "ENDPOINT_TYPES", "REQUEST_SCHEMAS"]
