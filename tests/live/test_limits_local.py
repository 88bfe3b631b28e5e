"""Live: the default store keeps one exact counter for all gevent workers of one gunicorn server."""
from __future__ import annotations

import re
import textwrap
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.live import Gunicorn

CONFIG = """
endpoints:
  - name: burst
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat, config: {stream_interval: 0.02}}
    limit: {calls: 20, renewal_period: 30 seconds}
"""
# %(p)s is the worker's pid: the log shows which workers served the burst.
ACCESS_LOG = ["--access-logfile", "-", "--access-logformat", "ACCESS %(s)s pid=%(p)s"]
BODY = {"model": "burst", "messages": [{"role": "user", "content": "one two three four"}], "stream": True}


def post(url: str) -> int:
    with requests.post(url + "/v1/chat/completions", json=BODY, timeout=10) as r:
        r.content  # read the whole stream
        return r.status_code


def test_default_store_is_exact_across_four_gevent_workers(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    server = Gunicorn(path, workers=4, extra_args=ACCESS_LOG)
    server.start()
    try:
        with ThreadPoolExecutor(40) as pool:
            statuses = list(pool.map(lambda _: post(server.url), range(120)))
    finally:
        server.stop()
    log = server.log()  # after stop: the workers flushed their access logs
    assert statuses.count(200) == 20, statuses
    assert statuses.count(429) == 100
    served = re.findall(r"ACCESS (\d+) pid=<?(\d+)", log)
    pids = {pid for status, pid in served if status == "429"}
    assert len(pids) >= 2, f"the burst reached only {pids}: the test would not show sharing"
