"""Kraken reference data cached in the database (refreshed hourly from the public API)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class Asset(models.Model):
    """One Kraken asset. ``symbol`` is the portal's name (``BTC``); ``kraken_id`` is Kraken's
    REST id (``XXBT``)."""

    kraken_id = models.CharField(max_length=32, unique=True)
    altname = models.CharField(max_length=32)
    symbol = models.CharField(max_length=32, unique=True)
    aclass = models.CharField(max_length=32, default="currency")
    decimals = models.PositiveSmallIntegerField()
    display_decimals = models.PositiveSmallIntegerField()
    collateral_value = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    status = models.CharField(max_length=40, default="enabled")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol


class AssetPair(models.Model):
    """One tradable pair with everything needed to build a valid order.

    ``symbol`` is the portal's display symbol (``BTC/USD``); ``kraken_id`` the REST key
    (``XXBTZUSD``), ``altname`` (``XBTUSD``) and ``wsname`` (``XBT/USD``) Kraken's other names.
    A pair that disappears from Kraken's answer is kept (orders refer to it) with status
    ``delisted``.
    """

    STATUS_DELISTED = "delisted"

    kraken_id = models.CharField(max_length=40, unique=True)
    altname = models.CharField(max_length=40)
    wsname = models.CharField(max_length=40, blank=True)
    symbol = models.CharField(max_length=40, unique=True)
    base = models.CharField(max_length=32)
    quote = models.CharField(max_length=32)
    base_kraken_id = models.CharField(max_length=32)
    quote_kraken_id = models.CharField(max_length=32)
    aclass_base = models.CharField(max_length=32, default="currency")
    pair_decimals = models.PositiveSmallIntegerField()
    lot_decimals = models.PositiveSmallIntegerField()
    cost_decimals = models.PositiveSmallIntegerField()
    lot_multiplier = models.PositiveIntegerField(default=1)
    ordermin = models.DecimalField(max_digits=38, decimal_places=18, default=Decimal(0))
    costmin = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    tick_size = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    status = models.CharField(max_length=40, default="online")
    # Fee schedules as [[volume, percent], ...] with both numbers as strings (exact decimals).
    fees = models.JSONField(default=list, blank=True)
    fees_maker = models.JSONField(default=list, blank=True)
    fee_volume_currency = models.CharField(max_length=32, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        indexes = [models.Index(fields=["altname"]), models.Index(fields=["wsname"])]

    def __str__(self) -> str:
        return self.symbol

    @property
    def is_tradable(self) -> bool:
        return self.status == "online"
