"""No configured key reaches a log line, whatever logs it, before or after a reload."""
from __future__ import annotations

import logging

from app.redaction import SecretFilter

CONFIG = """
endpoints:
  - name: gpt
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: m, config: {openai_api_key: sk-log-secret-1}}
"""


def test_log_lines_and_tracebacks_are_scrubbed(make_app, caplog):
    make_app(CONFIG)
    log = logging.getLogger("ai_gateway")
    with caplog.at_level(logging.INFO, logger="ai_gateway"):
        log.info("calling with %s", "Bearer sk-log-secret-1")
        try:
            raise ValueError("bad key sk-log-secret-1")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert "sk-log-secret-1" not in text
    assert "Bearer [redacted]" in text and "bad key [redacted]" in text


def test_reload_updates_the_secrets(make_app, write_config, caplog):
    app = make_app(CONFIG)
    gateway = app.extensions["ai_gateway"]
    path = write_config(CONFIG.replace("sk-log-secret-1", "sk-log-secret-2"))
    import os

    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert gateway.check_for_changes()
    with caplog.at_level(logging.INFO, logger="ai_gateway"):
        logging.getLogger("ai_gateway").info("key sk-log-secret-2")
    assert "sk-log-secret-2" not in caplog.text


def test_longest_secret_first():
    f = SecretFilter()
    f.update("a", {"abcd", "abcdefgh"})
    assert f._scrub("x abcdefgh y abcd") == "x [redacted] y [redacted]"
