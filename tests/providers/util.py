"""Helpers for provider tests: canned upstream bodies, provider construction, request capture."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
import responses

from app.errors import InvalidRequest
from app.http import Timeout
from app.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, BaseProvider
from app.schemas import REQUEST_SCHEMAS

DATA = Path(__file__).resolve().parents[1] / "data"

# Request pieces several providers' tests send.
USER = {"role": "user", "content": "Capital of France?"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}


def data(vendor_or_path: str, name: str | None = None) -> Any:
    """A canned upstream body. `data("tgi/x.json")` gives raw bytes; `data(vendor, name)` gives
    parsed JSON for .json files and raw bytes for anything else."""
    if name is None:
        return (DATA / vendor_or_path).read_bytes()
    path = DATA / vendor_or_path / name
    if name.endswith(".json"):
        return json.loads(path.read_text())
    return path.read_bytes()


def data_json(name: str) -> Any:
    return json.loads(data(name))


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


sse_events = events


def read_stream(resp: Any) -> list[Any]:
    """The decoded `data:` payloads of a Flask test-client streaming response."""
    return events(resp.get_data())


def check_text_stream(events: list[Any], text: str, usage: dict) -> None:
    """A chat stream asked with include_usage: role delta first, `text` across the deltas,
    `stop` on the last choice chunk, then the usage chunk and [DONE]."""
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == text
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == usage


def gateway_reply(make_app: Any, config: str, route: str, payload: dict, *, url: str, status: int, body: bytes) -> Any:
    """The gateway's answer on `route` when the upstream at `url` replies `status` with JSON `body`."""
    responses.post(url, status=status, body=body, content_type="application/json")
    return make_app(config).test_client().post(route, json=payload)


def load(kind: str, payload: dict) -> dict:
    """A request as the API layer hands it over: validated by the unified schema."""
    return REQUEST_SCHEMAS[kind].load(payload)


def refusal(provider: BaseProvider, kind: str, payload: dict) -> InvalidRequest:
    """The InvalidRequest the provider raises for this (schema-validated) request of `kind`."""
    call = {CHAT: provider.chat, COMPLETIONS: provider.completions, EMBEDDINGS: provider.embeddings}[kind]
    try:
        call(load(kind, payload))
    except InvalidRequest as exc:
        return exc
    raise AssertionError(f"{type(provider).__name__} accepted {payload!r}")


def sent_json(call: Any) -> Any:
    """The JSON body of a request captured by `responses`."""
    return json.loads(call.request.body)


def sent(index: int = -1) -> tuple[responses.Call, Any]:
    """The `index`th request the `responses` mock saw, and its JSON body."""
    call = responses.calls[index]
    return call, json.loads(call.request.body)


def session() -> requests.Session:
    return requests.Session()


def build(cls: type[BaseProvider], model: str, config: dict, endpoint_type: str = CHAT) -> BaseProvider:
    """A provider as the gateway builds it: config through its schema, a real session."""
    loaded = cls.config_schema().load(config)
    return cls(model, loaded, session=requests.Session(), timeout=Timeout(2, 5), endpoint_type=endpoint_type)


def example_endpoints(file: str, monkeypatch: Any = None, **env: str) -> list:
    """Load config/examples/<file>, first setting the env vars it references (through monkeypatch)."""
    from app import config as config_mod

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return config_mod.load(str(DATA.parents[1] / "config" / "examples" / file))
