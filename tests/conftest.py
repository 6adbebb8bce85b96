"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from promptpulse.testing import FakeProvider


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A fake OpenAI/Anthropic endpoint on loopback with the default Scenario; use set_scenario/fail_next."""
    with FakeProvider() as fake:
        yield fake
