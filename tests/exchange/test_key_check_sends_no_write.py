"""The key check's fallback probe may call Kraken without an exchange operation: every call it
makes is a read or validate-only, so the client sends it (and may retry it) and it can never
move money."""

from __future__ import annotations

from apps.exchange.key_check import PROBE_CALLS
from apps.kraken.client import NON_IDEMPOTENT, is_idempotent, is_validate_only


def test_every_probe_call_is_a_read_or_validate_only() -> None:
    for _permission, method, params in PROBE_CALLS:
        assert is_idempotent(method, params), method
        if method in NON_IDEMPOTENT:
            assert is_validate_only(method, params), method
