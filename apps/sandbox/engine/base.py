"""The engine's state and event plumbing, shared by every engine part."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from apps.sandbox.auth import Authenticator
from apps.sandbox.clock import Clock
from apps.sandbox.market import Market
from apps.sandbox.pairs import PAIRS
from apps.sandbox.ratelimit import RestLimiter, TradingLimiter
from apps.sandbox.util import IdGen

from .models import (
    Account,
    Listener,
    Order,
)


class EngineBase:
    """State of the whole exchange; the parts below add behaviour in layers."""

    def __init__(self, *, seed: int, tier: str, clock: Clock) -> None:
        self.seed = seed
        self.default_tier = tier
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not crypto
        self.ids = IdGen(seed)
        self.auth = Authenticator()
        self.rest_limiter = RestLimiter()
        self.trade_limiter = TradingLimiter()
        self.accounts: dict[str, Account] = {}
        # WS token → the API key that asked for it (WS requests act with that key's rights).
        self.ws_token_keys: dict[str, str] = {}
        self.status = "online"
        self.pair_status: dict[str, str] = dict.fromkeys(PAIRS, "online")
        # Balance/BalanceEx list Earn funds as ".F" assets only in the pre-Nov-2025 shape.
        self.legacy_f_balances = False
        self.markets: dict[str, Market] = {}
        self.book_orders: dict[tuple[str, str], list[Order]] = {}
        self.untriggered: dict[str, list[Order]] = {pair_id: [] for pair_id in PAIRS}
        self.pending_start: list[Order] = []
        self.listeners: list[Listener] = []
        self.book_listeners: list[Callable[[str], None]] = []
        self._seq = 0
        self._acct_seq = 0
        self.last_tick = clock.now()
        # Probability per simulated second that an outside participant sends a market order.
        self.flow_rate = 0.6
        self.strict_validate_trap = False
        # Benchmarks switch Kraken's limiters off to measure raw throughput.
        self.rate_limits = True
        self.exec_interest: Callable[[str], bool] = lambda _account_id: True
        now = clock.now()
        for pid, pair in PAIRS.items():
            market = Market(pair=pair, rng=random.Random(f"{seed}:{pid}"), mid=pair.start_price)  # noqa: S311
            market.init(now)
            self.markets[pid] = market
            self.book_orders[(pid, "buy")] = []
            self.book_orders[(pid, "sell")] = []

    # ------------------------------------------------------------------ events
    def emit(self, account_id: str, kind: str, payload: dict[str, Any]) -> None:
        for fn in self.listeners:
            fn(account_id, kind, payload)

    def now(self) -> float:
        return self.clock.now()

    # ------------------------------------------------------------------ accounts / keys
