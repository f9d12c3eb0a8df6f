"""What the rules read and write: the trader's `Ticket`, the `Check` they fill in (errors per
field, confirmations, notes, Kraken's parameters) with its `Estimate`, and the order-type
sets and number parsing the rules share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.kraken.models import AssetPair
from apps.orgs.models import KrakenAccount
from apps.trading import market
from apps.trading.models import (
    FeeCurrency,
    OrderType,
    Side,
    TimeInForce,
)
from apps.vault.models import Credential

PRICED = frozenset(
    {
        OrderType.LIMIT,
        OrderType.STOP_LOSS,
        OrderType.TAKE_PROFIT,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT_LIMIT,
        OrderType.TRAILING_STOP,
        OrderType.TRAILING_STOP_LIMIT,
        OrderType.ICEBERG,
    }
)
TWO_PRICES = frozenset(
    {OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT, OrderType.TRAILING_STOP_LIMIT}
)
TRIGGERED = frozenset(
    {
        OrderType.STOP_LOSS,
        OrderType.TAKE_PROFIT,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT_LIMIT,
        OrderType.TRAILING_STOP,
        OrderType.TRAILING_STOP_LIMIT,
    }
)
TRAILING = frozenset({OrderType.TRAILING_STOP, OrderType.TRAILING_STOP_LIMIT})
POST_ONLY_OK = frozenset({OrderType.LIMIT, OrderType.ICEBERG})
CLOSE_OK = frozenset(
    {
        OrderType.LIMIT,
        OrderType.STOP_LOSS,
        OrderType.TAKE_PROFIT,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT_LIMIT,
    }
)
LIMIT_PRICED = frozenset({OrderType.LIMIT, OrderType.ICEBERG})

# At most 15 digits before the point and 18 after: every amount Kraken takes, and nothing whose
# arithmetic could leave Decimal's precision.
_DIGITS = r"(\d{1,15}(?:\.\d{1,18})?)"
_RELATIVE = re.compile(r"^\s*([+-])\s*" + _DIGITS + r"\s*(%?)\s*$")
_ABSOLUTE = re.compile(r"^\s*" + _DIGITS + r"\s*$")
_OFFSET = re.compile(r"^\s*\+?\s*" + _DIGITS + r"\s*(%?)\s*$")
MAX_AMOUNT = Decimal("1e15")
QUANTITY_TOO_LARGE = "That quantity is beyond anything Kraken accepts."
MAX_DIGITS = 30  # anything longer is not a price or a quantity anyone means


@dataclass
class Ticket:
    """What the trader entered. Texts stay texts until the rules read them (relative prices)."""

    account: KrakenAccount | None = None
    pair: str = ""
    side: str = Side.BUY
    order_type: str = OrderType.LIMIT
    quantity: Decimal | None = None
    quantity_in: str = "base"  # or "quote"
    price: str = ""
    price2: str = ""
    trigger: str = ""
    time_in_force: str = TimeInForce.GTC
    expires_at: datetime | None = None
    post_only: bool = False
    fee_currency: str = FeeCurrency.DEFAULT
    display_volume: Decimal | None = None
    close_order_type: str = ""
    close_price: str = ""
    close_price2: str = ""
    confirmed: bool = False
    # The ticket's own random id, written when the ticket was drawn: the same ticket sent
    # twice (a double click, Enter held down, the browser repeating a POST) is one order.
    submission: str = ""


@dataclass
class Estimate:
    volume: Decimal | None = None  # base
    avg_price: Decimal | None = None
    cost: Decimal | None = None  # quote
    fee: Decimal | None = None  # quote
    fee_pct: Decimal | None = None
    fee_source: str = ""
    liquidity: str = ""  # "taker", "maker", "mixed"
    fills_now: Decimal | None = None  # how much would trade at once against the book
    book_short: bool = False  # the book is thinner than the order


@dataclass
class Check:
    errors: dict[str, list[str]] = field(default_factory=dict)
    confirmations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] | None = None
    credential: Credential | None = None
    pair: AssetPair | None = None
    volume: Decimal | None = None
    quote_quantity: Decimal | None = None
    viqc: bool = False
    price: Decimal | None = None
    price2: Decimal | None = None
    notional: Decimal | None = None  # quote
    notional_reporting: Decimal | None = None
    reporting_currency: str = ""
    estimate: Estimate = field(default_factory=Estimate)
    book: market.Book = market.EMPTY_BOOK
    halted: bool = False
    # What the ticket offers, so the page shows only what is allowed (and says why not).
    allowed_types: list[str] = field(default_factory=list)
    allowed_tifs: list[str] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        messages = self.errors.setdefault(name, [])
        if message not in messages:
            messages.append(message)

    @property
    def ok(self) -> bool:
        return not self.errors and self.params is not None

    @property
    def needs_confirmation(self) -> bool:
        return bool(self.confirmations)

    @property
    def refusal_errors(self) -> dict[str, list[str]]:
        """The errors that are refusals (everything but an unticked confirmation)."""
        return {k: v for k, v in self.errors.items() if k != "confirmed"}


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _choice(value: str, choices: type[Any]) -> bool:
    return value in set(choices.values)
