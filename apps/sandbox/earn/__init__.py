"""Earn: strategies by lock type, asynchronous (de)allocation, bonding/unbonding/timed locks
as allocation states, auto-earn (``flex``) funds and accruing rewards.

``catalogue`` (strategies, lock types, wallet ids) → ``holdings`` (what an account holds,
settlement with the clock) → ``handlers`` (the REST endpoints).
"""

from __future__ import annotations

from .catalogue import STRATEGIES, Strategy, flex_strategy
from .handlers import DEFAULT_FAILURE, earn_handlers
from .holdings import accrue, earn_by_asset, earn_wallets, settle

__all__ = [
    "DEFAULT_FAILURE",
    "STRATEGIES",
    "Strategy",
    "accrue",
    "earn_by_asset",
    "earn_handlers",
    "earn_wallets",
    "flex_strategy",
    "settle",
]
