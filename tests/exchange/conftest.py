"""Exchange fixtures: a sandbox account family (master with balances, a subaccount, a
withdrawal address) and the owner's stored key for it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings as django_settings
from redis.asyncio import Redis

from apps.exchange.hooks import operation_hooks_clear
from apps.exchange.key_check import credential_check
from apps.exchange.models import queue_for
from apps.exchange.streams.connection import AccountStream
from apps.exchange.streams.hooks import stream_hooks_isolated
from apps.exchange.streams.process import StreamsProcess
from apps.orgs.models import Membership
from apps.vault.models import Credential
from apps.vault.policy import ALLOWED
from apps.vault.services import credential_create, credential_test
from kraken_portal.celery import app
from tests.factories import master_account
from tests.vault.conftest import KEK_1

DOT_STRATEGY = "ESRFUO3-Q62XD-WIOIL7"  # the spec's instant DOT strategy (sandbox catalogue)
WITHDRAW_KEY = "cold-wallet"
BALANCES = {"USD": "500000", "XBT": "5", "DOT": "1000", "ETH": "10"}


@dataclass(frozen=True)
class Desk:
    account_id: str
    iiban: str
    sub_account_id: str
    sub_iiban: str
    api_key: str
    secret: str
    credential: Credential  # the trading key
    funding: Credential  # the funding key (withdrawals, transfers, Earn)
    # A second key on the account, for the tests' own look at it (its own nonce sequence).
    look_key: str
    look_secret: str

    def credential_for(self, kind: str) -> Credential:
        return self.credential if queue_for(kind) == "orders" else self.funding

    def look(self, sandbox: Any, method: str, params: dict[str, Any] | None = None) -> Any:
        answer = sandbox.private(self.look_key, self.look_secret, method, params or {})
        assert not answer.get("error"), answer
        return answer["result"]


@pytest.fixture
def exchange_sandbox(sandbox: Any, settings: Any) -> Iterator[Any]:
    """The session's sandbox with the client aimed at it, no faults, short retries, and the
    reconciler's spacing shortened (two looks, half a second apart) so tests run quickly."""
    settings.KRAKEN_API_URL = sandbox.url
    settings.KRAKEN_RETRY_BASE_DELAY = 0.02
    settings.KRAKEN_RETRY_MAX_DELAY = 0.1
    settings.KRAKEN_HTTP_TIMEOUT = 5
    settings.EXCHANGE_NOT_PLACED_MISSES = 2
    settings.EXCHANGE_MISS_SPACING = 0.5
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    sandbox.clear_faults()
    sandbox.set_status("online")
    yield sandbox
    sandbox.clear_faults()
    sandbox.set_status("online")


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Tasks enqueued on commit run at once in this process (no worker): the in-process
    tests drive send and reconcile themselves and must not race a session worker."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _no_hooks_left() -> Iterator[None]:
    yield
    operation_hooks_clear()


def _store(membership: Membership, account: Any, api_key: str, secret: str, use: str) -> Credential:
    """Store a desk key and check it with the real permission probe, as a key must be checked
    before it may trade or move funds (apps/vault/services.py)."""
    credential = credential_create(
        membership=membership,
        label=f"Desk {use} {api_key[:6]}",
        api_key=api_key,
        secret=secret,
        otp=None,
        account=account,
        use=use,
        probe=False,
    )
    credential_test(credential=credential)
    credential_check(credential_id=credential.pk)  # the worker's task body, run here
    credential.refresh_from_db()
    return credential


def _permissions(use: str) -> list[str]:
    """What the portal allows a key of this use to hold: nothing that would get it refused."""
    return sorted(str(permission) for permission in ALLOWED[use])


def make_desk(sandbox: Any, membership: Membership) -> Desk:
    account_id = sandbox.create_account(BALANCES, tier="pro")
    iiban = sandbox.account(account_id)["iiban"]
    sub = sandbox.create_subaccount_info(account_id, username=f"sub-{secrets.token_hex(4)}")
    sandbox.add_withdraw_address(account_id, "XBT", WITHDRAW_KEY, "bc1qportaltestaddress")
    api_key, secret = sandbox.create_key(account_id, permissions=_permissions("trading"))
    funding_key, funding_secret = sandbox.create_key(
        account_id, permissions=_permissions("funding")
    )
    look_key, look_secret = sandbox.create_key(account_id)
    # The portal's record of that Kraken account (the sandbox account is on the pro tier).
    account = master_account(membership.org, tier="pro")
    credential = _store(membership, account, api_key, secret, "trading")
    funding = _store(membership, account, funding_key, funding_secret, "funding")
    return Desk(
        account_id=account_id,
        iiban=iiban,
        sub_account_id=str(sub["account_id"]),
        sub_iiban=str(sub["iiban"]),
        api_key=api_key,
        secret=secret,
        credential=credential,
        funding=funding,
        look_key=look_key,
        look_secret=look_secret,
    )


@pytest.fixture
def desk(exchange_sandbox: Any, owner: Membership) -> Desk:
    return make_desk(exchange_sandbox, owner)


@dataclass(frozen=True)
class Reader:
    """A sandbox account the portal reads through a designated trading key (what the streams
    and balances_refresh use), and a key of the same account for the tests' own direct calls
    (another client: its own nonce sequence, its own REST counter)."""

    account_id: str
    account: Any  # KrakenAccount
    credential: Credential
    api_key: str
    other_key: str
    other_secret: str

    def direct(self, sandbox: Any, method: str, params: dict[str, Any] | None = None) -> Any:
        answer = sandbox.private(self.other_key, self.other_secret, method, params or {})
        assert not answer.get("error"), answer
        return answer["result"]


def make_reader(
    sandbox: Any,
    membership: Membership,
    *,
    balances: dict[str, str] | None = None,
    account: Any = None,
    without: frozenset[str] = frozenset(),
) -> Reader:
    account_id = sandbox.create_account(balances or BALANCES, tier="pro")
    permissions = [p for p in _permissions("trading") if p not in without]
    api_key, secret = sandbox.create_key(account_id, permissions=permissions)
    other_key, other_secret = sandbox.create_key(account_id)
    account = account or master_account(membership.org, tier="pro")
    credential = credential_create(
        membership=membership,
        label=f"Designated trading {api_key[:6]}",
        api_key=api_key,
        secret=secret,
        otp=None,
        account=account,
        use="trading",
        probe=False,
        designated=True,
    )
    credential_test(credential=credential)
    credential_check(credential_id=credential.pk)
    credential.refresh_from_db()
    return Reader(
        account_id=account_id,
        account=account,
        credential=credential,
        api_key=api_key,
        other_key=other_key,
        other_secret=other_secret,
    )


@pytest.fixture
def reader(exchange_sandbox: Any, owner: Membership) -> Reader:
    return make_reader(exchange_sandbox, owner)


def eventually(condition: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll `condition()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout:.0f} s: {condition}")
        time.sleep(interval)


class StreamsThread:
    """The streams process (apps/exchange/streams/process.py), run in this test process on its
    own event loop in a thread, with short intervals and its own lease key."""

    def __init__(self, lease_key: str) -> None:
        self.lease_key = lease_key
        self.process: StreamsProcess | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streams-test", daemon=True)

    def start(self) -> StreamsThread:
        self._thread.start()
        assert self._started.wait(10), "the streams thread did not start"
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        redis = Redis.from_url(django_settings.REDIS_URL)
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self.process = StreamsProcess(
            redis=redis, lease_key=self.lease_key, lease_ttl=2, lease_poll=0.2, poll=0.3, tick=0.3
        )
        self._started.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self.process.run_forever()
        finally:
            await redis.aclose()

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the streams thread did not stop"

    def stream(self, account_id: int) -> AccountStream | None:
        return self.process.streams.get(account_id) if self.process else None

    # 60 s: the first connection of a run also waits for the token and the sandbox's snapshot,
    # which took longer than 30 s once in a loaded full run.
    def wait_subscribed(self, account_id: int, timeout: float = 60.0) -> AccountStream:
        def ready() -> AccountStream | None:
            stream = self.stream(account_id)
            return stream if stream is not None and stream.subscribed.is_set() else None

        stream: AccountStream = eventually(ready, timeout)
        return stream


@pytest.fixture
def streams_settings(exchange_sandbox: Any, settings: Any) -> Any:
    settings.KRAKEN_WS_AUTH_URL = exchange_sandbox.ws_auth_url
    return exchange_sandbox


@pytest.fixture
def run_streams(streams_settings: Any) -> Iterator[Any]:
    """Start the in-process streams (call it); every one started is stopped afterwards."""
    started: list[StreamsThread] = []

    def start(lease_key: str | None = None) -> StreamsThread:
        thread = StreamsThread(lease_key or f"test:streams:lease:{secrets.token_hex(4)}")
        started.append(thread.start())
        return thread

    with stream_hooks_isolated():
        try:
            yield start
        finally:
            for thread in started:
                thread.stop()
