"""The trading desk: order ticket, pre-trade risk, kill switch, blotters and P&L. Orders are
exchange operations.
"""

from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "apps.trading"
    label = "trading"

    def ready(self) -> None:
        from apps.trading.live_blotter import register as blotter_live_register

        blotter_live_register()
