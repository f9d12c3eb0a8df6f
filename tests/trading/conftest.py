"""Desk fixtures: a sandbox account with a trader's own checked trading key (and the owner's
designated key, which the kill switch uses), Kraken's pair rules loaded from the sandbox, and
the trading hooks registered afresh (the exchange tests clear every hook after each test)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from apps.exchange.hooks import operation_hooks_clear
from apps.exchange.models import Kind
from apps.kraken.services import reference_data_refresh
from apps.market.store import PAIR_STATUS_KEY, SYSTEM_STATUS_KEY, dumps, state_key
from apps.orgs.models import KrakenAccount, Membership
from apps.trading.apps import register_hooks
from apps.trading.rules import Ticket
from apps.vault.models import Credential
from apps.vault.services import credential_designate
from tests.exchange.conftest import (  # noqa: F401 - fixtures
    BALANCES,
    _permissions,
    _store,
    eager_tasks,
    exchange_sandbox,
)
from tests.factories import master_account
from tests.market.conftest import clear_market_keys


@dataclass(frozen=True)
class TradingDesk:
    account_id: str
    account: KrakenAccount
    credential: Credential  # the trader's own trading key
    designated: Credential  # the owner's designated trading key (kill switch)
    look_key: str
    look_secret: str

    def look(self, sandbox: Any, method: str, params: dict[str, Any] | None = None) -> Any:
        answer = sandbox.private(self.look_key, self.look_secret, method, params or {})
        assert not answer.get("error"), answer
        return answer["result"]

    def orders_with(self, sandbox: Any, cl_ord_id: str) -> int:
        opened = self.look(sandbox, "OpenOrders", {"cl_ord_id": cl_ord_id})["open"]
        closed = self.look(sandbox, "ClosedOrders", {"cl_ord_id": cl_ord_id})["closed"]
        return len(opened) + len(closed)


@pytest.fixture(autouse=True)
def trading_hooks() -> Iterator[None]:
    for kind in (Kind.ADD_ORDER, Kind.AMEND_ORDER, Kind.CANCEL_ORDER, Kind.CANCEL_ALL):
        operation_hooks_clear(kind)
    register_hooks()
    yield
    for kind in (Kind.ADD_ORDER, Kind.AMEND_ORDER, Kind.CANCEL_ORDER, Kind.CANCEL_ALL):
        operation_hooks_clear(kind)
    register_hooks()


@pytest.fixture
def market_keys() -> Iterator[Any]:
    """The market feeder's store, clean, with helpers to publish what a feeder would."""
    clear_market_keys()
    client = redis.Redis.from_url(django_settings.REDIS_URL)

    class Market:
        def system(self, status: str) -> None:
            now = time.time()
            client.hset(
                SYSTEM_STATUS_KEY, mapping={"status": status, "since": now, "received_at": now}
            )

        def pair(self, symbol: str, status: str) -> None:
            now = time.time()
            client.hset(
                PAIR_STATUS_KEY,
                symbol,
                dumps({"status": status, "since": now, "received_at": now}),
            )

        def book(
            self,
            symbol: str,
            *,
            last: str,
            bids: list[tuple[str, str]] = (),  # type: ignore[assignment]
            asks: list[tuple[str, str]] = (),  # type: ignore[assignment]
        ) -> None:
            client.set(
                state_key(symbol),
                dumps(
                    {
                        "symbol": symbol,
                        "price_decimals": 1,
                        "qty_decimals": 8,
                        "ticker": {"last": Decimal(last)},
                        "bids": [[Decimal(p), Decimal(q)] for p, q in bids],
                        "asks": [[Decimal(p), Decimal(q)] for p, q in asks],
                        "book_ready": True,
                        "trades": [],
                        "candles": [],
                        "received_at": time.time(),
                        "status": None,
                    }
                ),
            )

    yield Market()
    clear_market_keys()
    client.close()


@pytest.fixture
def no_session_worker(_celery_worker_pool: Any) -> None:
    """Stop the session's Celery worker (a later test that needs it starts it again): a test
    that leaves a task queued must know no worker takes it early."""
    _celery_worker_pool.close()


@pytest.fixture
def pair_rules(exchange_sandbox: Any) -> None:  # noqa: F811 - the fixture
    reference_data_refresh()


def make_trading_desk(sandbox: Any, owner: Membership, trader: Membership) -> TradingDesk:
    account_id = sandbox.create_account(BALANCES, tier="pro")
    api_key, secret = sandbox.create_key(account_id, permissions=_permissions("trading"))
    designated_key, designated_secret = sandbox.create_key(
        account_id, permissions=_permissions("trading")
    )
    look_key, look_secret = sandbox.create_key(account_id)
    account = master_account(owner.org, tier="pro")
    credential = _store(trader, account, api_key, secret, "trading")
    designated = _store(owner, account, designated_key, designated_secret, "trading")
    credential_designate(credential=designated, actor=owner, designated=True)
    designated.refresh_from_db()
    return TradingDesk(
        account_id=account_id,
        account=account,
        credential=credential,
        designated=designated,
        look_key=look_key,
        look_secret=look_secret,
    )


@pytest.fixture
def trading_desk(
    exchange_sandbox: Any,  # noqa: F811 - the fixture
    pair_rules: None,
    owner: Membership,
    trader: Membership,
) -> TradingDesk:
    return make_trading_desk(exchange_sandbox, owner, trader)


def limit_ticket(account: KrakenAccount, **changes: Any) -> Ticket:
    """A limit buy far below the market (it rests on the book)."""
    values: dict[str, Any] = {
        "account": account,
        "pair": "BTC/USD",
        "side": "buy",
        "order_type": "limit",
        "quantity": Decimal("0.01"),
        "price": "1000",
        "confirmed": True,
    }
    values.update(changes)
    return Ticket(**values)
