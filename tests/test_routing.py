"""The caching URL map routes exactly like werkzeug's, and forgets when the rules change."""
from __future__ import annotations

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from app import routing
from app.routing import CachingMap, GatewayFlask


def _maps() -> tuple[Map, CachingMap]:
    rules = [Rule("/endpoints/<name>/invocations", endpoint="invoke", methods=["POST"]),
             Rule("/api/2.0/endpoints/", endpoint="list"), Rule("/v1/models/<path:model>", endpoint="model")]
    return Map([Rule(r.rule, endpoint=r.endpoint, methods=r.methods) for r in rules]), CachingMap(rules)


@pytest.mark.parametrize("path,method", [
    ("/endpoints/chat/invocations", "POST"), ("/api/2.0/endpoints/", "GET"), ("/v1/models/a/b.c", "GET"),
    ("/endpoints/chat/invocations", "GET"), ("/nowhere", "GET"), ("/api/2.0/endpoints", "GET"),
])
def test_same_answers_as_werkzeug_twice(path: str, method: str) -> None:
    plain, cached = _maps()

    def outcome(m: Map) -> object:
        try:
            return m.bind("localhost").match(path, method)
        except Exception as exc:  # NotFound, MethodNotAllowed, RequestRedirect
            return type(exc)

    expected = outcome(plain)
    assert outcome(cached) == expected
    assert outcome(cached) == expected  # from the memo this time


def test_the_view_arguments_are_a_fresh_copy_each_time() -> None:
    _, cached = _maps()
    adapter = cached.bind("localhost")
    _, values = adapter.match("/endpoints/chat/invocations", "POST")
    values["name"] = "changed"
    assert adapter.match("/endpoints/chat/invocations", "POST")[1] == {"name": "chat"}


def test_a_new_rule_is_seen_at_once() -> None:
    _, cached = _maps()
    with pytest.raises(NotFound):
        cached.bind("localhost").match("/health", "GET")
    assert cached.bind("localhost").match("/api/2.0/endpoints/", "GET")[0] == "list"
    cached.add(Rule("/health", endpoint="health"))
    assert cached.bind("localhost").match("/health", "GET")[0] == "health"
    with pytest.raises(MethodNotAllowed):
        cached.bind("localhost").match("/endpoints/x/invocations", "DELETE")


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "CACHE_SIZE", 10)
    _, cached = _maps()
    adapter = cached.bind("localhost")
    for i in range(25):
        assert adapter.match(f"/endpoints/e{i}/invocations", "POST") == ("invoke", {"name": f"e{i}"})
    assert len(cached._matcher._seen) <= 10


def test_the_gateway_app_uses_it() -> None:
    app = GatewayFlask(__name__)
    assert isinstance(app.url_map, CachingMap)


def test_ensure_sync_is_remembered_and_still_runs_coroutines() -> None:
    app = GatewayFlask(__name__)

    def view() -> str:
        return "sync"

    async def coro() -> str:
        return "async"

    assert app.ensure_sync(view) is view
    assert app.ensure_sync(view) is view and view in app._sync
    app.async_to_sync = lambda func: ("made sync", func)  # type: ignore[method-assign]
    assert app.ensure_sync(coro) == ("made sync", coro)  # still recognised as a coroutine function
    assert app.ensure_sync(coro) == ("made sync", coro)
