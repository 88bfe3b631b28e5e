"""Every shipped config (default and examples) loads with its environment variables set."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import config

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "config").rglob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_config_loads(path, monkeypatch):
    for name in set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", path.read_text())):
        monkeypatch.setenv(name, f"test-value-for-{name.lower()}")
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # Bedrock examples may take the region from here
    assert config.load(str(path))


def test_default_config_needs_no_keys():
    endpoints = config.load(str(ROOT / "config" / "default.yaml"))
    assert {e.provider for e in endpoints} == {"echo"}
    assert {e.endpoint_type for e in endpoints} == {"llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"}
