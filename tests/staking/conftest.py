"""Staking fixtures: a sandbox account with Earn funds and the organization's designated keys on
it (funding: the (de)allocations; read-only: strategies, allocations and status calls), prices
from the real feeder for the approval threshold, and a worker whose follow-up looks are quick."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from apps.exchange.hooks import operation_hooks_clear
from apps.exchange.key_check import credential_check
from apps.exchange.models import Kind
from apps.market.store import state_key
from apps.orgs.models import KrakenAccount, Membership
from apps.staking import services
from apps.vault.models import Credential
from apps.vault.policy import ALLOWED
from apps.vault.services import credential_create, credential_test
from tests.factories import master_account, subaccount_of
from tests.plugins.celery_worker import CeleryWorker, sandbox_environment
from tests.plugins.sandbox import SandboxProcess, start_sandbox, stop_sandbox

DOT_FLEX = "ESRFUO3-Q62XD-WIOIL7"  # DOT instant (Kraken's "flexible"), min 0.01
DOT_BONDED = "ESDQCOL-WTZEU-NU55QF"  # DOT bonded, 28-day unbonding, intermediate tier and up
DOT_AUTO = "ESFLXDO-TAUTO-EARN01"  # DOT auto-earn: never allocatable
SOL_BONDED = "ESSR4XE-DS3WX-3YEXPA"  # SOL bonded: 1-day bonding, 3-day unbonding, min 0.5
USDC_FLEX = "ESMWVX6-JAPVY-23L3CV"  # USDC instant, user cap 100 000
BALANCES = {"USD": "100000", "DOT": "1000", "SOL": "100", "USDC": "200000", "ETH": "5"}
PRICE_PAIRS = ["DOT/USD", "SOL/USD", "USDC/USD", "ETH/USD", "BTC/USD"]
DAY = 86400


@dataclass(frozen=True)
class EarnDesk:
    account_id: str  # the sandbox's
    account: KrakenAccount  # the portal's
    funding: Credential
    reader: Credential
    look_key: str
    look_secret: str

    def look(self, sandbox: Any, method: str, params: dict[str, Any] | None = None) -> Any:
        answer = sandbox.private(self.look_key, self.look_secret, method, params or {})
        assert not answer.get("error"), answer
        return answer["result"]

    def holding(self, sandbox: Any, strategy_id: str) -> dict[str, Any] | None:
        items = self.look(sandbox, "Earn/Allocations")["items"]
        return next((i for i in items if i["strategy_id"] == strategy_id), None)


@pytest.fixture(autouse=True)
def staking_cache_starts_empty() -> None:
    """Earn reads are cached per account id, and test databases reuse ids from run to run."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(match="*staking:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def staking_hooks() -> Iterator[None]:
    """The exchange's tests clear every result hook after each of theirs: make sure staking's
    are registered (once) for ours."""
    for kind in (Kind.EARN_ALLOCATE, Kind.EARN_DEALLOCATE):
        operation_hooks_clear(kind)
    from apps.exchange.hooks import operation_hook_register

    for kind in (Kind.EARN_ALLOCATE, Kind.EARN_DEALLOCATE):
        operation_hook_register(
            kind,
            on_done=services.on_operation_done,
            on_rejected=services.on_operation_refused,
            on_not_placed=services.on_operation_not_placed,
        )
    return


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    """Staking's own sandbox (it overrides the session's for these tests). They fast-forward
    its clock by days (bonding, unbonding, rewards), and the clock only moves forward: on the
    shared sandbox every later test's trades would be stamped days ahead of the wall clock
    (the desk's fill test then found its fill outside "today")."""
    own = start_sandbox()
    try:
        yield own
    finally:
        stop_sandbox(own)


@pytest.fixture
def earn_sandbox(sandbox: Any, settings: Any) -> Iterator[Any]:
    """The session's sandbox with the client aimed at it, short retries, Earn settling one
    simulated second after a call."""
    settings.KRAKEN_API_URL = sandbox.url
    settings.KRAKEN_RETRY_BASE_DELAY = 0.02
    settings.KRAKEN_RETRY_MAX_DELAY = 0.1
    settings.KRAKEN_HTTP_TIMEOUT = 5
    settings.EXCHANGE_NOT_PLACED_MISSES = 2
    settings.EXCHANGE_MISS_SPACING = 0.5
    sandbox.clear_faults()
    sandbox.configure(earn_delay=1)
    yield sandbox
    sandbox.clear_faults()
    sandbox.configure(earn_delay=5)


def _store(
    membership: Membership, account: KrakenAccount, key: str, secret: str, use: str
) -> Credential:
    credential = credential_create(
        membership=membership,
        label=f"Earn {use} {key[:6]}",
        api_key=key,
        secret=secret,
        otp=None,
        account=account,
        use=use,
        probe=False,
        designated=True,
    )
    credential_test(credential=credential)
    credential_check(credential_id=credential.pk)
    credential.refresh_from_db()
    return credential


def make_earn_desk(sandbox: Any, owner: Membership, *, tier: str = "pro") -> EarnDesk:
    account_id = sandbox.create_account(BALANCES, tier=tier)
    funding_key, funding_secret = sandbox.create_key(
        account_id, permissions=sorted(str(p) for p in ALLOWED["funding"])
    )
    read_key, read_secret = sandbox.create_key(
        account_id, permissions=sorted(str(p) for p in ALLOWED["read_only"])
    )
    look_key, look_secret = sandbox.create_key(account_id)
    if KrakenAccount.objects.filter(org=owner.org, archived_at__isnull=True).exists():
        account = subaccount_of(master_account(owner.org), f"Sub {account_id[:6]}")
    else:
        account = master_account(owner.org, tier=tier)
    return EarnDesk(
        account_id=account_id,
        account=account,
        funding=_store(owner, account, funding_key, funding_secret, "funding"),
        reader=_store(owner, account, read_key, read_secret, "read_only"),
        look_key=look_key,
        look_secret=look_secret,
    )


@pytest.fixture
def desk(earn_sandbox: Any, owner: Membership) -> EarnDesk:
    return make_earn_desk(earn_sandbox, owner)


def _priced() -> bool:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        return all(client.exists(state_key(symbol)) for symbol in PRICE_PAIRS)
    finally:
        client.close()


@pytest.fixture
def earn_prices(sandbox: Any, settings: Any) -> None:
    """Prices the real feeder took from the sandbox (fed once, then left in Redis), accepted
    however old: these tests are about thresholds, not price freshness."""
    settings.MARKET_PRICE_MAX_AGE = 24 * 3600
    if _priced():
        return
    from redis.asyncio import Redis

    from tests.market.conftest import make_feeder

    async def feed() -> None:
        client = Redis.from_url(django_settings.REDIS_URL)
        feeder = make_feeder(sandbox, client, pairs=PRICE_PAIRS)
        task = asyncio.create_task(feeder.run_forever())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = feeder.states
            if len(states) == len(PRICE_PAIRS) and all(
                "bid" in s.ticker and "ask" in s.ticker for s in states.values()
            ):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.8)  # the trailing flush stores the newest tickers
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()

    # In a thread of its own: a browser test's Playwright loop may already run in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(feed())).result()
    assert _priced(), "the feeder stored no prices"


def worker_environment(sandbox: Any) -> dict[str, str]:
    return {
        **sandbox_environment(sandbox),
        "STAKING_POLL_SECONDS": "0.5",
        "STAKING_LOCK_POLL_SECONDS": "1",
        "KRAKEN_RETRY_BASE_DELAY": "0.02",
        "KRAKEN_RETRY_MAX_DELAY": "0.1",
        "MARKET_PRICE_MAX_AGE": "86400",
    }


@pytest.fixture
def staking_worker(_celery_worker_pool: Any, earn_sandbox: Any) -> Iterator[CeleryWorker]:
    worker: CeleryWorker = _celery_worker_pool.get(worker_environment(earn_sandbox))
    yield worker
    # Shown by pytest only when the test failed: what the worker did meanwhile.
    print(worker.log()[-6000:])


def wait_for(check: Callable[[], Any], *, within: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        time.sleep(0.2)
