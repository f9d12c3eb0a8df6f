from __future__ import annotations

from django.conf import settings
from django.db import models


class WatchlistItem(models.Model):
    """A pair a person follows; their watched pairs come first on the markets overview."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlist"
    )
    symbol = models.CharField(max_length=32)  # WS v2 spelling, BTC/USD
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "symbol"], name="market_watch_once_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} watches {self.symbol}"


class MarketPreference(models.Model):
    """How a person likes the markets overview laid out, remembered across devices."""

    class Layout(models.TextChoices):
        TILES = "tiles", "Tiles"
        TABLE = "table", "Table"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="market_preference",
    )
    layout = models.CharField(max_length=8, choices=Layout.choices, default=Layout.TILES)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id} sees markets as {self.layout}"
