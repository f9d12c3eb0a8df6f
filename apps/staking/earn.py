"""Kraken Earn as the portal reads it: strategies and allocations per account, parsed once into
typed values (Decimal amounts, aware times), through the exchange's private reads.

Kraken's Strategies answer depends on the account (its tier decides `can_allocate` and
`allocation_restriction_info`), so both reads are per account. They are cached briefly in the
shared cache: every page and follow-up of the same account within seconds shares one call, and
a change the portal makes (a request settling) drops the account's allocations at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.cache import cache
from django.utils.dateparse import parse_datetime

from apps.exchange.services import private_read
from apps.kraken.errors import KrakenError
from apps.orgs.models import KrakenAccount
from apps.vault.models import Credential, Use
from apps.vault.selectors import NoCredential, designated_credential

STRATEGIES_TTL = 300  # seconds: the catalogue changes rarely
ALLOCATIONS_TTL = 15  # seconds: balances move with rewards and settlements
ZERO = Decimal(0)

NO_READ_KEY = (
    "{account} has no designated key the portal may read Earn with: an owner or admin "
    "designates one under “API keys”."
)
READ_FAILED = "Kraken's Earn data for {account} could not be read just now ({reason})."

# Kraken's allocation_restriction_info values, in words.
RESTRICTION_TEXT = {
    "tier": "the account's verification tier is too low for this strategy",
    "region": "not offered in the account's region",
    "kyc": "the account's verification is incomplete",
}
AUTO_EARN_TEXT = "auto-earn: funds earn while they stay in the spot wallet; nothing to allocate"


class EarnUnavailable(Exception):
    """Earn could not be read for an account; the message is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _dec(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ZERO
    return number if number.is_finite() else ZERO


def _opt_dec(value: Any) -> Decimal | None:
    return None if value in (None, "") else _dec(value)


def _when(value: Any) -> datetime | None:
    return parse_datetime(str(value)) if value else None


@dataclass(frozen=True)
class Strategy:
    id: str
    asset: str  # Kraken's altname (DOT, ETH, XBT)
    lock_type: str  # flex | bonded | timed | instant
    apr_low: Decimal
    apr_high: Decimal
    payout_seconds: int
    bonding_seconds: int
    unbonding_seconds: int
    exit_queue_seconds: int
    duration_months: int | None
    min_allocation: Decimal
    user_cap: Decimal | None
    allocation_fee: Decimal
    deallocation_fee: Decimal
    can_allocate: bool
    can_deallocate: bool
    restrictions: tuple[str, ...]
    auto_compound: str
    yield_source: str

    @property
    def apr_mid(self) -> Decimal:
        return (self.apr_low + self.apr_high) / 2

    @property
    def is_auto_earn(self) -> bool:
        return self.lock_type == "flex"

    @property
    def allocatable(self) -> bool:
        """Never for auto-earn, whatever Kraken's flag says."""
        return self.can_allocate and not self.is_auto_earn

    @property
    def why_not(self) -> str:
        """Why this account may not allocate, in words ('' when it may)."""
        if self.is_auto_earn:
            return AUTO_EARN_TEXT
        if self.allocatable:
            return ""
        reasons = [RESTRICTION_TEXT.get(r, r) for r in self.restrictions]
        return "; ".join(reasons) or "Kraken does not take allocations to it from this account"

    @property
    def lock_label(self) -> str:
        return {
            "flex": "Auto-earn",
            "instant": "Flexible",
            "bonded": "Bonded",
            "timed": "Locked",
        }.get(self.lock_type, self.lock_type)

    @classmethod
    def parse(cls, item: dict[str, Any]) -> Strategy:
        lock = item.get("lock_type") or {}
        apr = item.get("apr_estimate") or {}
        months = lock.get("duration_months")
        return cls(
            id=str(item["id"]),
            asset=str(item.get("asset", "")),
            lock_type=str(lock.get("type", "")),
            apr_low=_dec(apr.get("low")),
            apr_high=_dec(apr.get("high")),
            payout_seconds=int(lock.get("payout_frequency") or 0),
            bonding_seconds=int(lock.get("bonding_period") or 0),
            unbonding_seconds=int(lock.get("unbonding_period") or 0),
            exit_queue_seconds=int(lock.get("exit_queue_period") or 0),
            duration_months=int(months) if months is not None else None,
            min_allocation=_dec(item.get("user_min_allocation")),
            user_cap=_opt_dec(item.get("user_cap")),
            allocation_fee=_dec(item.get("allocation_fee")),
            deallocation_fee=_dec(item.get("deallocation_fee")),
            can_allocate=bool(item.get("can_allocate")),
            can_deallocate=bool(item.get("can_deallocate")),
            restrictions=tuple(str(r) for r in item.get("allocation_restriction_info") or ()),
            auto_compound=str((item.get("auto_compound") or {}).get("type", "")),
            yield_source=str((item.get("yield_source") or {}).get("type", "")),
        )


@dataclass(frozen=True)
class Lock:
    """One bonding, unbonding or exit-queue allocation with its end."""

    amount: Decimal
    created_at: datetime | None
    expires: datetime | None
    expires_raw: str


@dataclass(frozen=True)
class Holding:
    """What one account holds in one strategy (Kraken's Allocations item)."""

    strategy_id: str
    asset: str
    allocated: Decimal  # earning, rewards included
    pending: Decimal  # in flight: positive allocating, negative deallocating
    bonding: Decimal
    unbonding: Decimal
    exit_queue: Decimal
    total: Decimal
    rewarded: Decimal
    bonding_locks: tuple[Lock, ...] = field(default=())
    unbonding_locks: tuple[Lock, ...] = field(default=())
    exit_locks: tuple[Lock, ...] = field(default=())

    @property
    def in_transit(self) -> Decimal:
        return max(self.pending, ZERO) + self.bonding + self.unbonding + self.exit_queue

    @classmethod
    def parse(cls, item: dict[str, Any]) -> Holding:
        parts = item.get("amount_allocated") or {}

        def native(name: str) -> Decimal:
            return _dec((parts.get(name) or {}).get("native"))

        def locks(name: str) -> tuple[Lock, ...]:
            return tuple(
                Lock(
                    amount=_dec(lock.get("native")),
                    created_at=_when(lock.get("created_at")),
                    expires=_when(lock.get("expires")),
                    expires_raw=str(lock.get("expires") or ""),
                )
                for lock in (parts.get(name) or {}).get("allocations") or ()
            )

        return cls(
            strategy_id=str(item.get("strategy_id", "")),
            asset=str(item.get("native_asset", "")),
            allocated=native("allocated"),
            pending=native("pending"),
            bonding=native("bonding"),
            unbonding=native("unbonding"),
            exit_queue=native("exit_queue"),
            total=native("total"),
            rewarded=_dec((item.get("total_rewarded") or {}).get("native")),
            bonding_locks=locks("bonding"),
            unbonding_locks=locks("unbonding"),
            exit_locks=locks("exit_queue"),
        )


def read_credential(account: KrakenAccount) -> Credential:
    """The account's designated key for reading: read-only first, then funding, then trading
    (every use may read; Strategies needs no permission, Allocations Query Funds)."""
    for use in (Use.READ_ONLY, Use.FUNDING, Use.TRADING):
        try:
            return designated_credential(account=account, use=use)
        except NoCredential:
            continue
    raise EarnUnavailable(NO_READ_KEY.format(account=account.label))


def _read(account: KrakenAccount, method: str, params: dict[str, Any] | None = None) -> Any:
    credential = read_credential(account)
    try:
        return private_read(credential=credential, method=method, params=params)
    except KrakenError as error:
        reason = error.code or error.detail or "no answer"
        raise EarnUnavailable(READ_FAILED.format(account=account.label, reason=reason)) from None


def _strategies_key(account: KrakenAccount) -> str:
    return f"staking:strategies:{account.pk}"


def _allocations_key(account: KrakenAccount) -> str:
    return f"staking:allocations:{account.pk}"


def strategies(account: KrakenAccount, *, fresh: bool = False) -> list[Strategy]:
    """Every Earn strategy as Kraken offers it to `account`. Raises EarnUnavailable."""
    key = _strategies_key(account)
    raw = None if fresh else cache.get(key)
    if raw is None:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(20):  # Kraken pages with a cursor; the catalogue is short
            answer = _read(account, "Earn/Strategies", {"cursor": cursor} if cursor else None)
            items.extend((answer or {}).get("items") or [])
            cursor = (answer or {}).get("next_cursor")
            if not cursor:
                break
        raw = items
        cache.set(key, raw, STRATEGIES_TTL)
    return [Strategy.parse(item) for item in raw]


def strategy_get(account: KrakenAccount, strategy_id: str) -> Strategy | None:
    return next((s for s in strategies(account) if s.id == strategy_id), None)


def allocations(account: KrakenAccount, *, fresh: bool = False) -> dict[str, Holding]:
    """strategy id → what `account` holds in it. Raises EarnUnavailable."""
    key = _allocations_key(account)
    raw = None if fresh else cache.get(key)
    if raw is None:
        answer = _read(account, "Earn/Allocations", {"hide_zero_allocations": True})
        raw = list((answer or {}).get("items") or [])
        cache.set(key, raw, ALLOCATIONS_TTL)
    holdings = (Holding.parse(item) for item in raw)
    return {holding.strategy_id: holding for holding in holdings}


def allocations_forget(account_id: int) -> None:
    cache.delete(f"staking:allocations:{account_id}")


def operation_status(account: KrakenAccount, *, direction: str, strategy_id: str) -> bool:
    """Whether Kraken is still processing the account's (de)allocation on the strategy.
    Raises KrakenError when Kraken reports that it failed (the status call carries the
    failure), EarnUnavailable when there is no key to ask with."""
    method = "Earn/AllocateStatus" if direction == "allocate" else "Earn/DeallocateStatus"
    credential = read_credential(account)
    answer = private_read(credential=credential, method=method, params={"strategy_id": strategy_id})
    return bool((answer or {}).get("pending"))
