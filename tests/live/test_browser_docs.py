"""Swagger UI in a real headless Chromium: "Try it out" runs a chat call on a live gateway."""
from __future__ import annotations

import json
import os

import pytest

from tests.cdp import Chromium, chromium_binary

OPBLOCK = "#operations-MLflow-invokeEndpoint"


@pytest.fixture
def browser(tmp_path):
    if chromium_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (scripts/test installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with Chromium(tmp_path / "profile") as chromium:
        yield chromium


def js(selector: str) -> str:
    return json.dumps(selector)


def test_try_it_out_runs_a_chat_call(live_gateway, browser, tmp_path):
    # `/` redirects to the UI.
    browser.navigate(live_gateway.url + "/")
    browser.wait_for(f"!!document.querySelector({js(OPBLOCK)})", what="the invocations operation")
    assert browser.evaluate("location.pathname") == "/docs"
    # Every script and stylesheet came from the gateway itself.
    origins = browser.evaluate(
        "[...document.querySelectorAll('script[src], link[href]')]"
        ".map(e => new URL(e.src || e.href).origin)"
    )
    assert origins and set(origins) == {live_gateway.url}

    browser.evaluate(f"document.querySelector({js(OPBLOCK + ' .opblock-summary-control')}).click(); 0")
    browser.wait_for(f"!!document.querySelector({js(OPBLOCK + ' .try-out__btn')})", what="Try it out")
    browser.evaluate(f"document.querySelector({js(OPBLOCK + ' .try-out__btn')}).click(); 0")

    # The endpoint name is a dropdown of the configured endpoints (the served enum); pick `chat`.
    select = OPBLOCK + ' tr[data-param-name="name"] select'
    options = browser.wait_for(
        f"(() => {{ const s = document.querySelector({js(select)});"
        " return s && [...s.options].map(o => o.value); })()",
        what="the endpoint dropdown",
    )
    assert {"chat", "completions", "embeddings", "chat-2"} <= set(options)
    browser.evaluate(
        f"(() => {{ const s = document.querySelector({js(select)}); s.value = 'chat';"
        " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
    )
    body = browser.wait_for(
        f"document.querySelector({js(OPBLOCK + ' textarea.body-param__text')})?.value",
        what="the request body editor",
    )
    assert json.loads(body)["messages"][0]["content"] == "Hello there"

    browser.evaluate(f"document.querySelector({js(OPBLOCK + ' .execute')}).click(); 0")
    status = browser.wait_for(
        f"document.querySelector({js(OPBLOCK + ' .live-responses-table tr.response td.response-col_status')})"
        "?.innerText.trim()",
        what="the live response",
    )
    assert status.startswith("200"), status
    shown = browser.wait_for(
        f"document.querySelector({js(OPBLOCK + ' .live-responses-table tr.response td.response-col_description pre')})"
        "?.innerText",
        what="the response body",
    )
    reply = json.loads(shown)
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["content"] == "Hello there"
    request_url = browser.evaluate(
        f"document.querySelector({js(OPBLOCK + ' .request-url pre')})?.innerText"
    )
    assert request_url == f"{live_gateway.url}/endpoints/chat/invocations"

    browser.evaluate(
        f"document.querySelector({js(OPBLOCK + ' .live-responses-table')})"
        ".scrollIntoView({block: 'center'}); 0"
    )
    shot = browser.screenshot(tmp_path / "swagger-try-it-out.png")
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
