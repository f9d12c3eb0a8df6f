"""What every private REST handler receives, and the parameter allow-list helper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from apps.sandbox.auth import ApiKey
from apps.sandbox.engine import Account, Engine
from apps.sandbox.params import (
    Params,
)

ZERO = Decimal(0)
PAGE = 50


@dataclass(slots=True)
class Ctx:
    engine: Engine
    acct: Account
    key: ApiKey
    params: Params
    form: bool


Handler = Callable[[Ctx], Any]

COMMON = frozenset({"nonce", "otp"})


def allow(*names: str) -> frozenset[str]:
    return COMMON | frozenset(names)
