from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.notifications.kinds import notification_kind_register

KIND = "tests.ping"


@pytest.fixture(autouse=True)
def test_kind() -> str:
    """A kind registered by the test, as an app would in its AppConfig.ready()."""
    notification_kind_register(KIND, "Test pings", default_email=True)
    return KIND


@pytest.fixture
def committing(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """`with committing():` runs the on-commit side effects (emails, socket events)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
