"""Helpers for provider tests: canned upstream bodies, SSE parsing of gateway replies, body capture."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

DATA = Path(__file__).resolve().parents[1] / "data"


def data(vendor: str, name: str) -> Any:
    """A canned upstream body: parsed JSON for .json files, raw bytes for .sse files."""
    path = DATA / vendor / name
    if name.endswith(".json"):
        return json.loads(path.read_text())
    return path.read_bytes()


def events(body: bytes | str) -> list[Any]:
    """The `data:` payloads of a gateway SSE reply, JSON-decoded except the [DONE] marker."""
    text = body.decode() if isinstance(body, bytes) else body
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                payload = line[len("data: "):]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def sent_json(call: Any) -> Any:
    """The JSON body of a request captured by `responses`."""
    return json.loads(call.request.body)


def session() -> requests.Session:
    return requests.Session()
