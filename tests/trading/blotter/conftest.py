"""Blotter and P&L fixtures (a package of their own, so tests/trading/conftest.py stays the
order ticket's): an organization's accounts and keys, exchange's records of their orders and
fills (as the platform's private streams and settled operations write them), and market prices
in the feeder's store for the P&L's live mids."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from apps.exchange.models import ExchangeFill, ExchangeOrder, Kind, Operation, State
from apps.market.store import FEEDER_KEY, PAIRS_KEY, dumps, state_key
from apps.orgs.models import KrakenAccount, Membership
from apps.vault.models import Credential
from apps.vault.services import credential_create
from tests.factories import master_account, subaccount_of
from tests.vault.conftest import KEK_1, new_key_pair

_ids = itertools.count(1)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class DeskData:
    """Builds exchange's records for one organization."""

    account: KrakenAccount
    # membership pk -> their key on the main account; (membership pk, account pk) -> any key
    keys: dict[Any, Credential] = field(default_factory=dict)

    def key_for(self, member: Membership, account: KrakenAccount | None = None) -> Credential:
        account = account or self.account
        slot: Any = member.pk if account == self.account else (member.pk, account.pk)
        if slot not in self.keys:
            pair = new_key_pair()
            self.keys[slot] = credential_create(
                membership=member,
                label=f"{member.user.email.split('@')[0]} key",
                api_key=pair.api_key,
                secret=pair.secret,
                otp=None,
                account=account,
                use="trading",
                probe=False,
            )
        return self.keys[slot]

    def order(
        self,
        *,
        by: Membership | None = None,
        account: KrakenAccount | None = None,
        pair: str = "XBTUSD",
        side: str = "buy",
        status: str = "open",
        vol: str = "1",
        price: str = "50000",
        opened_at: datetime | None = None,
    ) -> ExchangeOrder:
        account = account or self.account
        operation = None
        if by is not None:
            operation = Operation.objects.create(
                org=account.org,
                account=account,
                credential=self.key_for(by, account),
                kind=Kind.ADD_ORDER,
                params={"pair": pair, "type": side, "volume": vol},
                state=State.DONE,
                requested_by=by.user,
            )
        n = next(_ids)
        return ExchangeOrder.objects.create(
            account=account,
            txid=f"O{n:06d}-TEST-{n:06d}",
            operation=operation,
            pair=pair,
            side=side,
            order_type="limit",
            status=status,
            vol=Decimal(vol),
            price=Decimal(price),
            opened_at=opened_at,
        )

    def fill(
        self,
        order: ExchangeOrder,
        *,
        qty: str,
        price: str,
        fees: list[dict[str, str]] | None = None,
        at: datetime,
    ) -> ExchangeFill:
        n = next(_ids)
        return ExchangeFill.objects.create(
            account=order.account,
            trade_id=f"T{n:06d}-TEST-{n:06d}",
            order=order,
            order_txid=order.txid,
            pair=order.pair,
            side=order.side,
            price=Decimal(price),
            qty=Decimal(qty),
            cost=Decimal(price) * Decimal(qty),
            fees=fees if fees is not None else [],
            liquidity="t",
            executed_at=at,
        )


@pytest.fixture(autouse=True)
def pnl_cache_starts_empty() -> None:
    """The P&L walk is cached in Redis by organization id, which a new test database reuses."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    keys = list(client.scan_iter(match="*trading:pnl:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def desk(org: Any, settings: Any) -> DeskData:
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    return DeskData(account=master_account(org))


@pytest.fixture
def subaccount(desk: DeskData) -> KrakenAccount:
    return subaccount_of(desk.account, "Arbitrage")


MARKET_PAIRS = [
    {
        "symbol": "BTC/USD",
        "base": "BTC",
        "quote": "USD",
        "price_decimals": 1,
        "qty_decimals": 8,
        "base_display_decimals": 5,
        "quote_display_decimals": 2,
        "base_decimals": 10,
        "quote_decimals": 4,
    },
    {
        "symbol": "ETH/USD",
        "base": "ETH",
        "quote": "USD",
        "price_decimals": 2,
        "qty_decimals": 8,
        "base_display_decimals": 5,
        "quote_display_decimals": 2,
        "base_decimals": 10,
        "quote_decimals": 4,
    },
    {
        "symbol": "BTC/EUR",
        "base": "BTC",
        "quote": "EUR",
        "price_decimals": 1,
        "qty_decimals": 8,
        "base_display_decimals": 5,
        "quote_display_decimals": 2,
        "base_decimals": 10,
        "quote_decimals": 4,
    },
    {
        "symbol": "EUR/USD",
        "base": "EUR",
        "quote": "USD",
        "price_decimals": 5,
        "qty_decimals": 8,
        "base_display_decimals": 2,
        "quote_display_decimals": 2,
    },
]


class Prices:
    """Live mids in the market feeder's store, as the feeder writes them (fresh)."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(django_settings.REDIS_URL)
        self.client.set(PAIRS_KEY, dumps(MARKET_PAIRS))
        now = time.time()
        self.client.hset(FEEDER_KEY, mapping={"heard_at": str(now), "connected_at": str(now - 60)})

    def set(self, symbol: str, mid: str, spread: str = "0") -> None:
        pair = next(p for p in MARKET_PAIRS if p["symbol"] == symbol)
        half = Decimal(spread) / 2
        now = time.time()
        state = {
            **pair,
            "ticker": {
                "bid": str(Decimal(mid) - half),
                "ask": str(Decimal(mid) + half),
                "last": mid,
            },
            "stamps": {"stats": now},
            "received_at": now,
        }
        self.client.set(state_key(symbol), dumps(state))
        self.client.hset(FEEDER_KEY, mapping={"heard_at": str(now)})

    def clear(self) -> None:
        keys = [PAIRS_KEY, FEEDER_KEY, *(state_key(p["symbol"]) for p in MARKET_PAIRS)]
        self.client.delete(*keys)
        self.client.close()


@pytest.fixture
def prices() -> Iterator[Prices]:
    market = Prices()
    yield market
    market.clear()


def at(minutes: int) -> datetime:
    """A fixed instant plus `minutes`: fills in a known order."""
    return T0 + timedelta(minutes=minutes)


__all__ = ["DeskData", "Prices", "at"]
