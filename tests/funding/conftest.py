"""Treasury fixtures: a sandbox account family (master with balances and a subaccount, both
with their Kraken ids on record), the owner's funding key designated for unattended work, a
withdrawal address allow-listed, Kraken's reference data, and market prices the conversion
service accepts (written to the market store as the feeder would)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.test import Client

from apps.exchange.hooks import operation_hooks_clear
from apps.exchange.models import Kind
from apps.funding.kinds import register_hooks
from apps.funding.models import Destination
from apps.kraken.services import reference_data_refresh
from apps.market.store import PAIRS_KEY, dumps, state_key
from apps.orgs.models import KrakenAccount, Membership
from apps.vault.services import credential_designate
from tests.exchange.conftest import (  # noqa: F401 - fixtures used by the treasury tests
    WITHDRAW_KEY,
    Desk,
    eager_tasks,
    exchange_sandbox,
    make_desk,
)
from tests.factories import subaccount_of
from tests.market.conftest import clear_market_keys

# The sandbox's Bitcoin method: fee 0.00015, minimum 0.0005.
BTC_FEE = Decimal("0.00015")
BTC_MINIMUM = Decimal("0.0005")
PRICES = {"BTC/USD": Decimal("50000"), "ETH/USD": Decimal("3000"), "DOT/USD": Decimal("5")}


def set_prices(prices: dict[str, Decimal], *, age: float = 0.0) -> None:
    """Store tickers as the market feeder does (bid = ask = the price, confirmed `age` s ago)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    at = time.time() - age
    # As the feeder lists them: with their decimals (the dashboard's desk panel reads them).
    listed = [{"symbol": symbol, "price_decimals": 1, "qty_decimals": 8} for symbol in prices]
    client.set(PAIRS_KEY, dumps(listed))
    for symbol, price in prices.items():
        state = {
            "symbol": symbol,
            "ticker": {"bid": str(price), "ask": str(price), "last": str(price)},
            "stamps": {"stats": at},
            "received_at": at,
        }
        client.set(state_key(symbol), dumps(state))
    client.close()


@pytest.fixture
def prices() -> Iterator[dict[str, Decimal]]:
    clear_market_keys()
    set_prices(PRICES)
    yield dict(PRICES)
    clear_market_keys()


@pytest.fixture(autouse=True)
def funding_hooks() -> None:
    """The treasury's exchange hooks, as FundingConfig.ready() registers them (other apps'
    tests clear every hook after themselves)."""
    for kind in (Kind.WITHDRAW, Kind.WITHDRAW_CANCEL, Kind.ACCOUNT_TRANSFER):
        operation_hooks_clear(kind)
    register_hooks()


@dataclass(frozen=True)
class Treasury:
    desk: Desk
    master: KrakenAccount
    sub: KrakenAccount
    destination: Destination


def _kraken_id(iiban: str) -> str:
    return iiban.replace(" ", "").upper()


def make_treasury(sandbox: Any, owner: Membership) -> Treasury:
    desk = make_desk(sandbox, owner)
    credential_designate(credential=desk.funding, actor=owner, designated=True)
    # The streams' and balance refresh's read key.
    credential_designate(credential=desk.credential, actor=owner, designated=True)
    master = desk.funding.account
    master.kraken_id = _kraken_id(desk.iiban)
    master.save(update_fields=["kraken_id"])
    sub = subaccount_of(master, "Operations")
    sub.kraken_id = _kraken_id(desk.sub_iiban)
    sub.save(update_fields=["kraken_id"])
    with transaction.atomic():
        destination = Destination.objects.create(
            org=owner.org,
            account=master,
            asset="XBT",
            method="Bitcoin",
            key=WITHDRAW_KEY,
            address="bc1qportaltestaddress",
            verified=True,
            status=Destination.Status.ALLOWED,
            requested_by=owner.user,
        )
    return Treasury(desk=desk, master=master, sub=sub, destination=destination)


@pytest.fixture
def reference_data(exchange_sandbox: Any) -> None:  # noqa: F811 - the imported fixture
    reference_data_refresh()


@pytest.fixture
def treasury(
    exchange_sandbox: Any,  # noqa: F811 - the imported fixture
    owner: Membership,
    reference_data: None,
    prices: Any,
) -> Treasury:
    return make_treasury(exchange_sandbox, owner)


@pytest.fixture
def client_for() -> Callable[[Membership], Client]:
    """A 2FA-verified client that confirmed its second factor just now (the treasury's writes
    ask for a fresh step-up; tests/funding/test_step_up.py covers being asked)."""
    from tests.approvals.conftest import stepped_up_client

    return stepped_up_client
