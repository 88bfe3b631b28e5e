"""The served OpenAPI document: docs/openapi.yaml with the configured endpoint names filled in."""
from __future__ import annotations

import copy
import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from app.schemas import CHAT, COMPLETIONS, EMBEDDINGS

# A symlink to docs/openapi.yaml in the source tree; package data (a copy) in a built wheel.
SPEC_PATH = Path(__file__).resolve().parent / "openapi.yaml"

# components.schemas entry -> the endpoint type whose names it lists (None: every endpoint).
NAME_SCHEMAS: dict[str, str | None] = {
    "EndpointName": None,
    "ChatEndpointName": CHAT,
    "CompletionsEndpointName": COMPLETIONS,
    "EmbeddingsEndpointName": EMBEDDINGS,
}
# /v1 operations whose request example names an endpoint in `model`, and the type it must have.
_V1_EXAMPLES = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
}


@lru_cache(maxsize=1)
def base_document() -> dict:
    """docs/openapi.yaml as written (parsed once per process)."""
    with open(SPEC_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def fill_names(document: Mapping[str, Any], endpoints: list[tuple[str, str]]) -> dict:
    """A copy of document whose endpoint-name schemas enumerate `endpoints` ((name, type) pairs).

    A type with no endpoint keeps a plain string: an empty `enum` would admit no value at all.
    """
    doc = copy.deepcopy(dict(document))
    schemas = doc["components"]["schemas"]
    for schema_name, endpoint_type in NAME_SCHEMAS.items():
        names = [n for n, t in endpoints if endpoint_type is None or t == endpoint_type]
        if names:
            schemas[schema_name]["enum"] = names
    # Keep "Try it out" working out of the box: the example's model must be a real endpoint.
    for path, endpoint_type in _V1_EXAMPLES.items():
        names = [n for n, t in endpoints if t == endpoint_type]
        media = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        example = media.get("example")
        if names and isinstance(example, dict) and example.get("model") not in names:
            media["example"] = {**example, "model": names[0]}
    return doc


class Served:
    """The document in both encodings, rebuilt only when the endpoint table object changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: object = None  # held, not just its id, so the key cannot be reused
        self._rendered: tuple[str, str] = ("", "")

    def render(self, table: Mapping[str, Any]) -> tuple[str, str]:
        """(yaml_text, json_text) for the given live table (name -> Live)."""
        with self._lock:
            if table is self._table:
                return self._rendered
        endpoints = [(name, live.endpoint.endpoint_type) for name, live in table.items()]
        doc = fill_names(base_document(), endpoints)
        rendered = (
            yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
            json.dumps(doc, ensure_ascii=False),
        )
        with self._lock:
            self._table, self._rendered = table, rendered
        return rendered
