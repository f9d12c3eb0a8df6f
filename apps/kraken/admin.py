"""Read-only admin for Kraken reference data (it is owned by the hourly refresh)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.kraken.models import Asset, AssetPair


class _ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Asset)
class AssetAdmin(_ReadOnly):
    list_display = ("symbol", "kraken_id", "altname", "decimals", "display_decimals", "status")
    search_fields = ("symbol", "kraken_id", "altname")


@admin.register(AssetPair)
class AssetPairAdmin(_ReadOnly):
    list_display = (
        "symbol",
        "kraken_id",
        "altname",
        "pair_decimals",
        "lot_decimals",
        "ordermin",
        "costmin",
        "tick_size",
        "status",
    )
    list_filter = ("status", "quote")
    search_fields = ("symbol", "kraken_id", "altname", "wsname")
