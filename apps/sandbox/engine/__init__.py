"""Accounts, balances, ledgers and the matching engine.

All money is Decimal. The engine is single-threaded (it runs inside the aiohttp event
loop), which gives the same serialisation guarantee Kraken's matching engine gives.

The ``Engine`` is built in layers, each a module with one concern, each layer may use
the ones below it: ``base`` (state, events) → ``accounts`` (keys, ledger, holds, fees) →
``order_entry`` (validation, descriptions) → ``matching`` (placing, filling, triggers) →
``simulation`` (the market tick, timers, the public book) → ``amending`` (amend, cancel,
trading counter).
"""

from __future__ import annotations

from .amending import AmendingPart
from .models import (
    ORDER_TYPES,
    TRIGGERED_TYPES,
    ZERO,
    Account,
    Fill,
    Listener,
    Order,
    quantize_down,
    quantize_up,
)

__all__ = [
    "ORDER_TYPES",
    "TRIGGERED_TYPES",
    "ZERO",
    "Account",
    "Engine",
    "Fill",
    "Listener",
    "Order",
    "quantize_down",
    "quantize_up",
]


class Engine(AmendingPart):
    """The whole exchange: every part stacked (see the module docstring)."""
