"""On live gunicorn, the served document's endpoint enums follow an edit of the config file."""
from __future__ import annotations

import time

import requests

from tests.live import Gunicorn

BEFORE = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat}
"""
AFTER = BEFORE + """
  - name: brand-new
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat}
"""


def _enum(url: str) -> list[str]:
    doc = requests.get(url + "/openapi.json", timeout=5).json()
    return doc["components"]["schemas"]["ChatEndpointName"]["enum"]


def test_enums_follow_a_hot_reload(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(BEFORE)
    with Gunicorn(config, workers=2) as gateway:
        assert _enum(gateway.url) == ["chat"]
        config.write_text(AFTER)
        deadline = time.monotonic() + 20  # generous: CI machines can be loaded
        streak = 0
        # Both workers reload on their own; ten answers in a row must show the new endpoint.
        while streak < 10 and time.monotonic() < deadline:
            streak = streak + 1 if _enum(gateway.url) == ["chat", "brand-new"] else 0
            time.sleep(0.05)
        assert streak >= 10, gateway.log()
        yaml_text = requests.get(gateway.url + "/openapi.yaml", timeout=5).text
        assert "- brand-new" in yaml_text
