"""The confirmations an order needs before it is sent: far from the market, large."""

from __future__ import annotations

from decimal import Decimal

from apps.orgs.models import Organization
from apps.trading import market
from apps.trading.models import (
    DeskSettings,
)
from apps.trading.rules.base import Check, Ticket
from apps.trading.rules.messages import CONFIRM_BOTH, CONFIRM_FAR, CONFIRM_LARGE


def confirmations(
    check: Check, ticket: Ticket, org: Organization, price: Decimal | None, book: market.Book
) -> None:
    """What the trader must confirm (far from the market, large notional, per the
    organization's desk settings); unconfirmed, the ticket gets a `confirmed` error."""
    settings_row = DeskSettings.objects.filter(org=org).first()
    band = settings_row.confirm_band_pct if settings_row else Decimal(5)
    threshold = settings_row.confirm_notional if settings_row else None
    if price is not None and book.last and band is not None:
        distance = abs(price - book.last) / book.last * 100
        if distance > band:
            check.confirmations.append(
                CONFIRM_FAR.format(distance=f"{distance:.2f}", last=f"{book.last:f}")
            )
    value = check.notional_reporting
    if threshold is not None and value is not None and value >= threshold:
        check.confirmations.append(
            CONFIRM_LARGE.format(value=f"{value:,.2f}", currency=org.reporting_currency)
        )
    if check.confirmations and not ticket.confirmed:
        check.add("confirmed", CONFIRM_BOTH)
