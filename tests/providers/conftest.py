"""Fixtures shared by the provider tests."""
from __future__ import annotations

from typing import Iterator

import pytest
import responses


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test item, so fixtures can see how the test ended."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def upstream(request: pytest.FixtureRequest) -> Iterator[responses.RequestsMock]:
    """A `responses` mock for the upstream; a test that passes must have used every reply.

    A test skipped half-way (an upstream spec that is not beside the checkout) is not also
    reported as an error for the replies it never got to.
    """
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
        call = getattr(request.node, "report_call", None)
        if call is not None and call.passed:
            unused = [f"{m.method} {m.url}" for m in rsps.registered() if not m.call_count]
            assert not unused, f"Not all requests have been executed: {unused}"
