"""The Earn strategies the sandbox offers, with Kraken's lock types (FUNDING-EARN.md):

* ``flex`` — auto-earn: funds earn while they sit in the account and stay spendable; never
  allocatable or deallocatable through the API (``can_allocate``/``can_deallocate`` false).
* ``instant`` — the UI's "flexible": allocate and deallocate at will (after processing).
* ``bonded`` — allocations pass through a bonding period (no rewards) and deallocations
  through an unbonding period before the funds are back in spot.
* ``timed`` — locked for a fixed duration, then returned to spot by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from apps.sandbox.pairs import ASSETS

DAY = 86400
# The WS ``balances`` wallet id of each lock type's Earn wallet (FUNDING-EARN.md lists
# main|flex|bonded|flexible|liquid|locked|closed).
WALLET_IDS = {"flex": "flex", "instant": "flexible", "bonded": "bonded", "timed": "locked"}
TIER_ORDER = ("starter", "intermediate", "pro")


@dataclass(frozen=True, slots=True)
class Strategy:
    id: str
    asset: str  # internal asset id
    lock: str  # flex | instant | bonded | timed
    apr_low: Decimal
    apr_high: Decimal
    min_alloc: Decimal
    bonding_s: int = 0
    unbonding_s: int = 0
    duration_s: int = 0  # timed
    payout_s: int = 604800
    user_cap: Decimal | None = None
    total_cap: Decimal | None = None  # across every account
    min_tier: str = "starter"

    @property
    def apr(self) -> Decimal:
        return (self.apr_low + self.apr_high) / 2

    @property
    def allocatable(self) -> bool:
        return self.lock != "flex"

    @property
    def deallocatable(self) -> bool:
        return self.lock not in ("flex", "timed")

    @property
    def wallet_id(self) -> str:
        return WALLET_IDS[self.lock]


def _d(text: str) -> Decimal:
    return Decimal(text)


STRATEGIES: dict[str, Strategy] = {
    strategy.id: strategy
    for strategy in (
        # The spec's example strategy: DOT, instant, weekly payouts.
        Strategy("ESRFUO3-Q62XD-WIOIL7", "DOT", "instant", _d("8"), _d("12"), _d("0.01")),
        Strategy(
            "ESDQCOL-WTZEU-NU55QF",
            "DOT",
            "bonded",
            _d("14"),
            _d("18"),
            _d("1"),
            unbonding_s=28 * DAY,
            min_tier="intermediate",
        ),
        Strategy("ESFLXDO-TAUTO-EARN01", "DOT", "flex", _d("6"), _d("8"), _d("0")),
        Strategy("ESLKQ2J-ZJQNA-5WFHZP", "XETH", "instant", _d("2.5"), _d("3.5"), _d("0.001")),
        Strategy(
            "ESTMETH-6MNTH-LOCK01",
            "XETH",
            "timed",
            _d("4"),
            _d("5"),
            _d("0.01"),
            duration_s=182 * DAY,
            payout_s=DAY,
            total_cap=_d("100"),
            min_tier="intermediate",
        ),
        Strategy("ESFLXET-HAUTO-EARN02", "XETH", "flex", _d("1.5"), _d("2"), _d("0")),
        Strategy("ESXUM7H-SJHQ6-KOQNNI", "XXBT", "instant", _d("0.1"), _d("0.25"), _d("0.0001")),
        Strategy("ESFLXXB-TAUTO-EARN03", "XXBT", "flex", _d("0.05"), _d("0.1"), _d("0")),
        Strategy(
            "ESMWVX6-JAPVY-23L3CV",
            "USDC",
            "instant",
            _d("3.5"),
            _d("4.5"),
            _d("1"),
            user_cap=_d("100000"),
        ),
        Strategy("ESFLXUS-DCAUT-OEARN4", "USDC", "flex", _d("2"), _d("3"), _d("0")),
        Strategy(
            "ESSR4XE-DS3WX-3YEXPA",
            "SOL",
            "bonded",
            _d("6"),
            _d("8"),
            _d("0.5"),
            bonding_s=DAY,
            unbonding_s=3 * DAY,
        ),
        Strategy("ESUKXMZ-B34BL-LRAEDV", "ADA", "instant", _d("1.5"), _d("3"), _d("5")),
    )
}


def wire_asset(asset: str) -> str:
    return ASSETS[asset].altname


def flex_strategy(asset: str) -> Strategy | None:
    return next((s for s in STRATEGIES.values() if s.asset == asset and s.lock == "flex"), None)


def tier_allows(tier: str, strategy: Strategy) -> bool:
    return TIER_ORDER.index(tier) >= TIER_ORDER.index(strategy.min_tier)
