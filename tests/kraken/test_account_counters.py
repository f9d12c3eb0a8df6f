"""Each counter where Kraken keeps it: REST per key, matching engine per account and pair."""

from __future__ import annotations

import secrets

from apps.kraken import ratelimit
from apps.kraken.client import KrakenKey


def new_key() -> str:
    return "test-" + secrets.token_hex(8)


def add_order(api_key: str, account_ref: str | None, tier: str = "starter"):
    (charge,) = ratelimit.charges_for(
        api_key=api_key,
        tier=tier,
        method="AddOrder",
        params={"pair": "XBTUSD"},
        account_ref=account_ref,
    )
    return charge


def test_two_keys_of_one_account_charge_one_trading_counter() -> None:
    account = f"acct:{secrets.randbelow(10**9)}"
    first, second = add_order(new_key(), account), add_order(new_key(), account)
    assert first.key == second.key
    assert first.key.endswith(f"{account}:BTC/USD")
    # Charged alternately, the two keys exhaust the one counter together: 59 orders (60 less
    # the headroom) are admitted in all, not 59 each.
    admitted = 0
    for charge in [first, second] * 40:
        if ratelimit.try_take([charge]) > 0:
            break
        admitted += 1
    assert admitted == 59


def test_two_accounts_keep_separate_trading_counters() -> None:
    key = new_key()
    assert add_order(key, "acct:1").key != add_order(key, "acct:2").key


def test_the_rest_counter_stays_per_key_on_one_account() -> None:
    account = "acct:7"
    one, two = new_key(), new_key()
    (rest_one,) = ratelimit.charges_for(
        api_key=one, tier="pro", method="Balance", params={}, account_ref=account
    )
    (rest_two,) = ratelimit.charges_for(
        api_key=two, tier="pro", method="Balance", params={}, account_ref=account
    )
    assert rest_one.key != rest_two.key


def test_without_an_account_a_key_is_its_own_account() -> None:
    one, two = new_key(), new_key()
    assert add_order(one, None).key != add_order(two, None).key
    assert add_order(one, None).key == add_order(one, None).key


def test_an_order_placed_by_one_key_is_priced_when_another_key_of_the_account_cancels_it() -> None:
    account = f"acct:{secrets.randbelow(10**9)}"
    placer, canceller = new_key(), new_key()
    ratelimit.remember_orders(
        api_key=placer, pair="XXBTZUSD", idents=["OAAAAA-BBBBB-CCCCCC"], account_ref=account
    )
    (charge,) = ratelimit.charges_for(
        api_key=canceller,
        tier="pro",
        method="CancelOrder",
        params={"txid": "OAAAAA-BBBBB-CCCCCC"},
        account_ref=account,
    )
    assert charge.amount == 8  # the youngest bracket's penalty
    assert charge.key == add_order(placer, account, tier="pro").key


def test_the_tier_sets_the_trading_capacity() -> None:
    assert add_order(new_key(), "acct:9", tier="starter").capacity == 60 - ratelimit.HEADROOM
    assert add_order(new_key(), "acct:9", tier="pro").capacity == 180 - ratelimit.HEADROOM


def test_a_kraken_key_carries_its_account_scope() -> None:
    key = KrakenKey(key_id="cred:1", api_key="pub", secret="s", tier="pro", account_ref="acct:3")
    assert key.account_ref == "acct:3"
    assert "acct:3" in repr(key)
    assert KrakenKey(key_id="cred:2", api_key="pub", secret="s").account_ref == ""
