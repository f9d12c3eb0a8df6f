"""The trading app's models. Blotters and P&L keep theirs in pnl_models.py (merged with the
order ticket's models by the lead)."""

from apps.trading.pnl_models import OpeningLot

__all__ = ["OpeningLot"]
