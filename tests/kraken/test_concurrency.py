"""Many processes on one key: no invalid nonces, and no rate-limit errors at near-full speed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.kraken import ratelimit
from apps.kraken.client import KrakenKey
from tests.kraken.conftest import sandbox_limits
from tests.kraken.workers import run_workers

MakeKey = Callable[..., KrakenKey]


def test_eight_processes_share_one_key_without_a_single_invalid_nonce(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key(tier="pro", nonce_window=0)
    processes, calls = 8, 200
    # CancelAllOrdersAfter(0) is authenticated and nonce-checked like every private call but
    # is outside the REST call counter, so the test measures the nonce path, not the budget.
    outcomes, seconds = run_workers(
        processes=processes,
        calls=calls,
        url=kraken_sandbox.url,
        api_key=key.api_key,
        secret=key.secret,
        tier=key.tier,
        method="CancelAllOrdersAfter",
        params={"timeout": 0},
    )
    print(
        f"\nnonce test: {processes}x{calls} calls in {seconds:.2f}s = "
        f"{processes * calls / seconds:.0f} calls/s on one key; outcomes {dict(outcomes)}"
    )
    assert outcomes.get("EAPI:Invalid nonce", 0) == 0
    assert outcomes == {"ok": processes * calls}


def test_a_burst_from_several_processes_waits_for_budget_instead_of_being_rejected(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key(tier="pro")
    processes, calls = 3, 10
    total = processes * calls
    outcomes, seconds = run_workers(
        processes=processes,
        calls=calls,
        url=kraken_sandbox.url,
        api_key=key.api_key,
        secret=key.secret,
        tier=key.tier,
        method="Balance",
        params={},
    )
    measured = total / seconds
    theoretical = ratelimit.theoretical_rate("pro", total)
    print(
        f"\nrate test (pro): {total} Balance calls in {seconds:.2f}s = {measured:.2f}/s, "
        f"theoretical {theoretical:.2f}/s ({measured / theoretical:.0%}); outcomes {dict(outcomes)}"
    )
    assert outcomes == {"ok": total}
    counter = sandbox_limits(kraken_sandbox, key.api_key)
    assert float(counter["api_counter"]) <= float(counter["api_max"])
    # The budget admits as much as Kraken allows (less one unit of headroom): a correctness
    # property of the model, not a speed test.
    assert measured >= 0.8 * theoretical


def test_an_order_burst_waits_for_the_per_pair_trading_counter(
    make_key: MakeKey, kraken_sandbox: Any
) -> None:
    key = make_key(tier="starter")
    processes, calls = 2, 33
    total = processes * calls
    # Validate-only orders are charged on Kraken's matching-engine counter like real ones.
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.01",
        "price": "1000",
        "validate": True,
    }
    outcomes, seconds = run_workers(
        processes=processes,
        calls=calls,
        url=kraken_sandbox.url,
        api_key=key.api_key,
        secret=key.secret,
        tier=key.tier,
        method="AddOrder",
        params=order,
    )
    print(f"\ntrading counter (starter): {total} AddOrder in {seconds:.2f}s; {dict(outcomes)}")
    assert outcomes == {"ok": total}
    trading = sandbox_limits(kraken_sandbox, key.api_key)["trading"]
    assert all(float(v) <= 60 for v in trading.values())
