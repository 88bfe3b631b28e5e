"""Fixtures shared by the provider tests."""
from __future__ import annotations

from typing import Iterator

import pytest
import responses


@pytest.fixture
def upstream() -> Iterator[responses.RequestsMock]:
    """A `responses` mock for the upstream; every registered reply must be used."""
    with responses.RequestsMock() as rsps:
        yield rsps
