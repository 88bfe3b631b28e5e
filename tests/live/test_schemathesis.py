"""Schemathesis fuzzes every operation of the served document against a live gateway."""
from __future__ import annotations

import subprocess
import sys

import pytest

# No 5xx, and every status, content type, header and body is the one the document promises.
CHECKS = ",".join((
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
))


def schemathesis_cli() -> list[str]:
    """The CLI of the schemathesis installed for this interpreter (not whatever is on PATH)."""
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        pytest.fail("schemathesis is a test dependency: pip install -e '.[test]'")
    return [sys.executable, "-m", "schemathesis.cli"]


def test_served_document_holds_under_fuzzing(live_gateway, tmp_path):
    argv = [
        *schemathesis_cli(), "--no-color", "run", live_gateway.url + "/openapi.json",
        "--checks", CHECKS,
        "--mode", "all",  # valid and invalid inputs
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "25",
        "--seed", "20261124",  # deterministic
        "--generation-database", "none",
        # One worker: hypothesis' lambda pretty-printer is not thread-safe on CPython 3.11.
        "--workers", "1",
        "--request-timeout", "10",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=150, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    assert "Tested: 14" in output, output[-5000:]  # every documented operation ran
    sys.stdout.write(output[-1500:])
