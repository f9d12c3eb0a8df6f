"""The P&L's own rows (issue 11 §5). Orders and fills are exchange's records
(apps.exchange.models); the desk keeps only what Kraken cannot tell it: the positions an
account held before the portal saw its trades, and what they cost.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.amounts import STORAGE_DECIMAL_PLACES, STORAGE_MAX_DIGITS
from apps.orgs.models import KrakenAccount


class OpeningLot(models.Model):
    """A position held before the account's first recorded fill, imported once per account and
    asset: the FIFO walk (apps.trading.pnl) opens it before every fill, so selling it is a
    disposal with a cost, not a short.

    `unit_cost` is the price the asset was valued at, in `currency` (the organization's
    reporting currency), when the lot was imported: what it was worth when the portal first
    saw it, which is where the portal's P&L for it starts.
    """

    account = models.ForeignKey(KrakenAccount, on_delete=models.PROTECT, related_name="+")
    asset = models.CharField(max_length=16)  # normalised (BTC, not XXBT)
    qty = models.DecimalField(max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES)
    unit_cost = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )
    currency = models.CharField(max_length=16)
    # How the cost was found (the price route, e.g. "BTC/USD"), for whoever reads the report.
    priced_by = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("account", "asset")
        constraints = (
            models.UniqueConstraint(fields=("account", "asset"), name="trading_opening_lot_once"),
        )

    def __str__(self) -> str:
        return f"{self.qty} {self.asset} at {self.unit_cost} {self.currency}"
