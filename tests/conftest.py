"""Shared fixtures: an app built from a temporary YAML config, and its Flask test client."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest

from app import create_app

ECHO_CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat}
  - name: completions
    endpoint_type: llm/v1/completions
    model: {provider: echo, name: echo-completions}
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model: {provider: echo, name: echo-embeddings}
"""


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write YAML (dedented) to a temporary gateway.yaml and return its path."""

    def write(text: str, name: str = "gateway.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def make_app(write_config):
    """Build an app from YAML text, without the file watcher (tests call reload themselves)."""

    def make(text: str = ECHO_CONFIG, **settings):
        path = write_config(text)
        return create_app(str(path), settings={"AI_GATEWAY_WATCH": False, **settings})

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()
