"""Helpers for provider tests: canned upstream bodies, provider construction, request capture."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
import responses

from app.http import Timeout
from app.providers.base import CHAT, BaseProvider

DATA = Path(__file__).resolve().parents[1] / "data"


def data(name: str) -> bytes:
    """A canned upstream body from tests/data/<vendor>/<file>."""
    return (DATA / name).read_bytes()


def data_json(name: str) -> Any:
    return json.loads(data(name))


def build(cls: type[BaseProvider], model: str, config: dict, endpoint_type: str = CHAT) -> BaseProvider:
    """A provider as the gateway builds it: config through its schema, a real session."""
    loaded = cls.config_schema().load(config)
    return cls(model, loaded, session=requests.Session(), timeout=Timeout(2, 5), endpoint_type=endpoint_type)


def sent(index: int = -1) -> tuple[responses.Call, Any]:
    """The `index`th request the `responses` mock saw, and its JSON body."""
    call = responses.calls[index]
    return call, json.loads(call.request.body)


def sse_events(raw: bytes) -> list[Any]:
    """Parse the gateway's own SSE output into JSON events (and the literal [DONE])."""
    out = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def example_endpoints(file: str) -> list:
    """Load config/examples/<file> (the caller sets the env vars it references)."""
    from app import config as config_mod

    return config_mod.load(str(DATA.parents[1] / "config" / "examples" / file))
