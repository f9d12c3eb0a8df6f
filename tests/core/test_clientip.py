"""The client's address: REMOTE_ADDR unless trusted proxies are configured, then the entry the
outermost trusted proxy wrote; never anything the client wrote itself."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from apps.core.clientip import client_ip


def _ip(*, remote: str = "10.0.0.1", **headers: str) -> str | None:
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote, headers=headers))


def test_without_proxies_forwarded_headers_are_ignored() -> None:
    assert _ip(**{"X-Forwarded-For": "6.6.6.6"}) == "10.0.0.1"
    assert _ip(**{"X-Real-IP": "6.6.6.6"}) == "10.0.0.1"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (1, "198.51.100.4", "198.51.100.4"),
        # The client's own claim sits to the left of what our proxy appended.
        (1, "6.6.6.6, 198.51.100.4", "198.51.100.4"),
        (2, "6.6.6.6, 198.51.100.4, 10.9.9.9", "198.51.100.4"),
        (1, "2001:DB8::1", "2001:db8::1"),
        # Fewer entries than proxies, no header, or garbage: nothing is vouched for.
        (2, "198.51.100.4", "10.0.0.1"),
        (1, "", "10.0.0.1"),
        (1, "6.6.6.6, not-an-address", "10.0.0.1"),
    ],
)
def test_behind_proxies_the_outermost_trusted_entry_is_the_client(
    settings: Any, proxies: int, forwarded: str, expected: str
) -> None:
    settings.TRUSTED_PROXY_COUNT = proxies
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert _ip(**headers) == expected


def test_the_header_is_configurable(settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    settings.CLIENT_IP_HEADER = "X-Real-IP"
    assert _ip(**{"X-Real-IP": "198.51.100.4", "X-Forwarded-For": "6.6.6.6"}) == "198.51.100.4"
