"""Every curl example in README.md and docs/*.md works as printed against a live gateway."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def curl_commands(text: str) -> list[str]:
    """The curl commands of the ```bash blocks, one per command (continuation lines joined)."""
    commands = []
    for block in BASH_BLOCK.findall(text):
        if "curl" not in block:
            continue
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]
    return commands


EXAMPLES = [
    pytest.param(command, id=f"{path.relative_to(ROOT)}#{n}")
    for path in DOCS
    for n, command in enumerate(curl_commands(path.read_text(encoding="utf-8")), 1)
]


def test_the_docs_have_curl_examples():
    assert len(EXAMPLES) >= 6


def check_body(body: str) -> None:
    """A JSON document without an error, or an SSE stream of JSON chunks ending in [DONE]."""
    if body.startswith("data: "):
        events = [line[len("data: "):] for line in body.splitlines() if line]
        assert events[-1] == "[DONE]", body[-500:]
        for event in events[:-1]:
            chunk = json.loads(event)
            assert "error" not in chunk, event
        return
    parsed = json.loads(body)
    assert isinstance(parsed, dict)
    assert "error" not in parsed and "detail" not in parsed, body[:500]


@pytest.mark.parametrize("command", EXAMPLES)
def test_curl_example(live_gateway, command):
    if shutil.which("curl") is None:
        if os.environ.get("CI"):
            pytest.fail("curl is required")
        pytest.skip("curl is not installed")
    assert "localhost:5000" in command
    live = command.replace("http://localhost:5000", live_gateway.url)
    # --fail-with-body: a 4xx/5xx answer makes curl exit non-zero instead of passing silently.
    live = re.sub(r"^curl ", "curl --fail-with-body --max-time 20 ", live)
    result = subprocess.run(["bash", "-o", "pipefail", "-c", live], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{live}\nexit {result.returncode}\n{result.stdout}{result.stderr}"
    check_body(result.stdout)
