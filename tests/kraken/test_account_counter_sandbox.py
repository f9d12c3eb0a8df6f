"""Proof (issue 10 §1): two keys on one Kraken account share one matching-engine counter.

Kraken (and the sandbox) count orders per account and pair, whichever key sends them. The
portal's limiter must therefore charge both keys of one account to the same counter, or a burst
across the two keys would overrun Kraken's and come back as `EOrder:Rate limit exceeded`.

The keys come out of the vault as the exchange app will get them (`credential_key_for_task`,
which sets the account's tier and counter scope). Orders are sent with the sandbox helper's own
signed client: real AddOrders (IOC limit buys far below the market, so nothing fills and nothing
rests) because the portal's only sender of non-idempotent calls, apps/exchange, does not exist
yet; the portal's limiter (`ratelimit.try_take`) admits each one first, exactly as
`apps.kraken.client` does before it sends.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from apps.exchange.key_check import credential_check
from apps.kraken import nonce, ratelimit
from apps.kraken.client import KrakenKey
from apps.vault.models import Use
from apps.vault.policy import NEEDED
from apps.vault.services import (
    KeyPurpose,
    credential_create,
    credential_key_for_task,
    credential_test,
)
from tests.factories import master_account

pytestmark = pytest.mark.django_db

TIER = "starter"  # threshold 60, decay 1/s: the smallest burst that shows the overrun
ORDERS = 70  # more than one account's threshold, fewer than two keys' thresholds
ORDER = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "price": "1000.0",
    "volume": "0.001",
    "timeinforce": "IOC",
}


def two_keys_on_one_account(sandbox: Any, owner: Any, trader: Any) -> tuple[KrakenKey, ...]:
    """A sandbox account with two API keys, stored in the vault on one portal account and
    checked."""
    sandbox_account = sandbox.create_account({"USD": "100000"}, tier=TIER)
    account = master_account(owner.org, tier=TIER)
    keys = []
    for membership in (owner, trader):
        # What trading needs, checked by the real probe: only a checked key may trade.
        api_key, secret = sandbox.create_key(
            sandbox_account, permissions=sorted(NEEDED[Use.TRADING])
        )
        credential = credential_create(
            membership=membership,
            label=f"Burst key of {membership.role}",
            api_key=api_key,
            secret=secret,
            otp=None,
            account=account,
            use="trading",
            probe=False,
        )
        credential_test(credential=credential)
        credential_check(credential_id=credential.pk)  # the worker's task body, run here
        keys.append(credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.TRADE))
    return tuple(keys)


def burst(sandbox: Any, keys: tuple[KrakenKey, ...], *, per_key_scope: bool) -> list[str]:
    """Send ORDERS AddOrders alternating between the keys, each admitted by the portal's
    limiter first; return Kraken's errors. `per_key_scope` charges each key as if it were its
    own account (the model before accounts existed)."""
    errors: list[str] = []
    for number in range(ORDERS):
        key = keys[number % len(keys)]
        charges = ratelimit.charges_for(
            api_key=key.api_key,
            tier=key.tier,
            method="AddOrder",
            params=ORDER,
            account_ref=None if per_key_scope else key.account_ref,
        )
        while (wait := ratelimit.try_take(charges)) > 0:
            time.sleep(wait)
        # The portal's nonce source: the probe already signed with it, so the helper's own
        # (milliseconds) would now be below the key's last nonce.
        reply = sandbox.private(
            key.api_key, key.secret, "AddOrder", ORDER, nonce=nonce.next_nonce(key.api_key)
        )
        errors += reply["error"]
    return errors


def test_a_burst_across_two_keys_of_one_account_is_never_rate_limited(
    kraken_sandbox: Any, owner: Any, trader: Any, settings: Any
) -> None:
    from tests.vault.conftest import KEK_1

    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    first, second = two_keys_on_one_account(kraken_sandbox, owner, trader)
    assert first.account_ref == second.account_ref
    assert first.tier == TIER

    assert burst(kraken_sandbox, (first, second), per_key_scope=False) == []


def test_the_same_burst_charged_per_key_overruns_the_accounts_counter(
    kraken_sandbox: Any, owner: Any, trader: Any, settings: Any
) -> None:
    # The control: without the account scope each key sees room for 59 orders, the two send
    # 70 at once, and the sandbox, which counts per account like Kraken, refuses the excess.
    from tests.vault.conftest import KEK_1

    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    keys = two_keys_on_one_account(kraken_sandbox, owner, trader)
    errors = burst(kraken_sandbox, keys, per_key_scope=True)
    assert "EOrder:Rate limit exceeded" in errors
