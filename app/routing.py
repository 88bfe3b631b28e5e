"""URL routing that remembers where each (path, method) it has seen leads; the app class using it."""
from __future__ import annotations

from typing import Any, Callable, Iterable, MutableMapping

from flask import Flask
from werkzeug.routing import Map, Rule, RuleFactory
from werkzeug.routing.matcher import StateMachineMatcher

CACHE_SIZE = 4096


class CachingMatcher(StateMachineMatcher):
    """werkzeug's matcher with a bounded memo of successful matches.

    Matching walks werkzeug's state machine on every request, about 6 % of a worker's CPU on
    the gateway's hot path. The rules change only when routes are added, so a path and method
    that matched once match the same rule with the same values until then. Failed matches
    (404, 405, redirects) raise and are not remembered. The memo is bounded: paths carry
    user-chosen endpoint names, and when it fills it starts over.
    """

    def __init__(self, merge_slashes: bool) -> None:
        super().__init__(merge_slashes)
        self._seen: dict[tuple[str, str, str, bool], tuple[Rule, dict[str, Any]]] = {}

    def add(self, rule: Rule) -> None:
        self._seen.clear()
        super().add(rule)

    def update(self) -> None:
        self._seen.clear()
        super().update()

    def match(self, domain: str, path: str, method: str, websocket: bool
              ) -> tuple[Rule, MutableMapping[str, Any]]:
        key = (domain, path, method, websocket)
        hit = self._seen.get(key)
        if hit is not None:
            return hit[0], dict(hit[1])  # a copy: the view may change its arguments
        rule, values = super().match(domain, path, method, websocket)
        if len(self._seen) >= CACHE_SIZE:
            self._seen.clear()
        self._seen[key] = (rule, dict(values))
        return rule, values


class CachingMap(Map):
    """A werkzeug Map whose matcher memoizes successful matches."""

    def __init__(self, rules: Iterable[RuleFactory] | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(None, *args, **kwargs)
        self._matcher = CachingMatcher(self._matcher.merge_slashes)
        for rule in rules or ():
            self.add(rule)


class GatewayFlask(Flask):
    """Flask with the caching URL map, and `ensure_sync` answered once per function."""

    url_map_class = CachingMap

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask asks on every request whether each view and hook is a coroutine function
        (`inspect.iscoroutinefunction`, ~3 % of a worker's CPU); the answer for a given
        function never changes, so it is remembered (bounded, for callables made per call)."""
        sync = self._sync.get(func)
        if sync is None:
            sync = super().ensure_sync(func)
            if len(self._sync) >= CACHE_SIZE:
                self._sync.clear()
            self._sync[func] = sync
        return sync
