"""Injectable sandbox clock.

Everything time-dependent (rate-limit decay, lockouts, token expiry, withdrawals, earn
rewards, order expiry, dead-man switch, market candles) reads this clock, so tests can
fast-forward it through the control API instead of sleeping.
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self, speed: float = 1.0) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._base = self._wall0
        self._speed = speed
        self._offset = 0.0

    def now(self) -> float:
        return self._base + (time.monotonic() - self._mono0) * self._speed + self._offset

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        # Re-anchor so the current time does not jump when the speed changes.
        current = self.now()
        self._mono0 = time.monotonic()
        self._base = current - self._offset
        self._speed = speed

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset
