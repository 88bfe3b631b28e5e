"""A live gateway (real gunicorn + gevent) shared by the live contract and client tests."""
from __future__ import annotations

import pytest

from tests.conftest import ECHO_CONFIG
from tests.live import Gunicorn

# Six echo endpoints: the README's three, plus three more so that listings span several pages.
LIVE_CONFIG = ECHO_CONFIG + """
  - name: chat-2
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat-2}
  - name: completions-2
    endpoint_type: llm/v1/completions
    model: {provider: echo, name: echo-completions-2}
  - name: embeddings-2
    endpoint_type: llm/v1/embeddings
    model: {provider: echo, name: echo-embeddings-2, config: {dimensions: 4}}
"""
PAGE_SIZE = 2


@pytest.fixture(scope="session")
def live_gateway(tmp_path_factory: pytest.TempPathFactory):
    """Gunicorn with two gevent workers, six echo endpoints and listings paged two at a time."""
    path = tmp_path_factory.mktemp("live-gateway") / "gateway.yaml"
    path.write_text(LIVE_CONFIG)
    with Gunicorn(path, workers=2, env={"AI_GATEWAY_PAGE_SIZE": str(PAGE_SIZE)}) as gunicorn:
        yield gunicorn
