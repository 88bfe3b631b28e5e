"""Pure translation for Bedrock embedding models: Titan (one text per call) and Cohere (batches)."""
from __future__ import annotations

from typing import Any, Mapping

from app.providers.bedrock_families import base_model_id

# ----- embeddings ----------------------------------------------------------------------------
# Titan: {"inputText":"...","dimensions"?:256|512|1024} → {"embedding":[...],"inputTextTokenCount":N}
# (one text per call). Cohere: {"texts":[...≤96],"input_type":"search_document"} →
# {"embeddings":[[...]]} or, with embedding types, {"embeddings":{"float":[[...]]}}.
COHERE_BATCH = 96
EMBEDDING_KEYS = {"input", "dimensions", "encoding_format", "input_type"}


def embedding_family(model: str) -> str | None:
    base = base_model_id(model)
    if base.startswith("amazon.titan-embed"):
        return "titan"
    if base.startswith("cohere.embed"):
        return "cohere"
    return None


def titan_embed_body(text: str, request: Mapping[str, Any]) -> dict:
    body: dict[str, Any] = {"inputText": text}
    if request.get("dimensions") is not None:
        body["dimensions"] = request["dimensions"]
    return body


def cohere_embed_body(texts: list[str], request: Mapping[str, Any]) -> dict:
    return {"texts": texts, "input_type": request.get("input_type") or "search_document"}


def titan_embedding(body: Mapping[str, Any]) -> tuple[list[float], int | None]:
    return body["embedding"], body.get("inputTextTokenCount")


def cohere_embeddings(body: Mapping[str, Any]) -> list[list[float]]:
    vectors = body["embeddings"]
    return vectors["float"] if isinstance(vectors, dict) else vectors
