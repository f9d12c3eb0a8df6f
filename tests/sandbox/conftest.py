"""The sandbox's own tests get a sandbox of their own: they change its global state (the clock,
moved forward by days and never back; its speed; system and pair statuses; faults), which the
portal's tests, sharing the session's sandbox, must not inherit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.plugins.sandbox import SandboxProcess, start_sandbox, stop_sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    own = start_sandbox()
    try:
        yield own
    finally:
        stop_sandbox(own)
