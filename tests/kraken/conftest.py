"""Fixtures for the Kraken client tests: the sandbox wired into settings, and fresh keys."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apps.kraken.client import KrakenKey

DEFAULT_BALANCES = {"USD": "100000", "BTC": "2"}


@pytest.fixture
def kraken_sandbox(sandbox: Any, settings: Any) -> Iterator[Any]:
    """The session's sandbox, with the client pointed at it, no faults, and short retries."""
    settings.KRAKEN_API_URL = sandbox.url
    settings.KRAKEN_RETRY_BASE_DELAY = 0.02
    settings.KRAKEN_RETRY_MAX_DELAY = 0.1
    sandbox.clear_faults()
    yield sandbox
    sandbox.clear_faults()
    sandbox.set_status("online")


def sandbox_limits(sandbox: Any, api_key: str) -> dict[str, Any]:
    """The sandbox's own view of the key's counters."""
    result: dict[str, Any] = sandbox.control(
        "GET", "/sandbox/limits?key=" + urllib.parse.quote(api_key, safe="")
    )
    return result


@pytest.fixture
def make_key(kraken_sandbox: Any) -> Callable[..., KrakenKey]:
    """``make_key(tier="pro", permissions=[...], balances={...})``: a new account and API key."""

    def make(
        *,
        tier: str = "pro",
        permissions: list[str] | None = None,
        balances: dict[str, str] | None = None,
        nonce_window: int = 0,
    ) -> KrakenKey:
        account_id = kraken_sandbox.create_account(
            DEFAULT_BALANCES if balances is None else balances, tier=tier
        )
        kwargs: dict[str, Any] = {"nonce_window": nonce_window}
        if permissions is not None:
            kwargs["permissions"] = permissions
        api_key, secret = kraken_sandbox.create_key(account_id, **kwargs)
        return KrakenKey(key_id=f"test:{account_id}", api_key=api_key, secret=secret, tier=tier)

    return make
