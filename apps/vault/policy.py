"""Least privilege: which Kraken key permissions each intended use needs, and which are excess.

Kraken's advice is to give a key only the permissions its job needs; a trading key that can
withdraw turns a leaked key into lost funds. The list page warns about both sides: permissions
the use needs but the key lacks, and permissions the key has but the use does not need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from apps.vault.models import Permission, Use

_QUERY = frozenset(
    {
        Permission.QUERY_FUNDS,
        Permission.QUERY_OPEN,
        Permission.QUERY_CLOSED,
        Permission.QUERY_LEDGER,
    }
)

# What each use needs to do its job.
NEEDED: dict[str, frozenset[str]] = {
    Use.READ_ONLY: frozenset({Permission.QUERY_FUNDS}),
    Use.TRADING: frozenset({Permission.QUERY_FUNDS, Permission.QUERY_OPEN, Permission.TRADE}),
    Use.FUNDING: frozenset({Permission.QUERY_FUNDS, Permission.WITHDRAW}),
}

# What each use may have without a warning: its needs plus harmless reads.
ALLOWED: dict[str, frozenset[str]] = {
    Use.READ_ONLY: _QUERY | {Permission.WEBSOCKET},
    Use.TRADING: _QUERY | {Permission.TRADE, Permission.WEBSOCKET},
    Use.FUNDING: _QUERY | {Permission.DEPOSIT, Permission.WITHDRAW, Permission.EARN},
}

EXCESS_WARNING = (
    "This key can do more than {use} needs: {names}. Kraken recommends giving each key only the "
    "permissions its job needs; edit the key on Kraken and test it again."
)
MISSING_WARNING = "This key lacks what {use} needs: {names}."
WITHDRAW_WARNING = (
    "This key can withdraw funds. If it leaks, funds can leave the account; keep withdrawal "
    "rights on funding keys only."
)


@dataclass(frozen=True)
class Assessment:
    granted: tuple[str, ...]
    excess: tuple[str, ...]
    missing: tuple[str, ...]
    warnings: tuple[str, ...]


def _labels(names: tuple[str, ...]) -> str:
    return ", ".join(Permission(name).label for name in names)


def assess(*, use: str, permissions: Mapping[str, bool | None]) -> Assessment:
    """Compare detected permissions (`{name: granted}`) with what `use` needs."""
    granted = tuple(name for name in Permission.values if permissions.get(name) is True)
    denied = {name for name in Permission.values if permissions.get(name) is False}
    excess = tuple(name for name in granted if name not in ALLOWED[use])
    missing = tuple(name for name in Permission.values if name in NEEDED[use] and name in denied)
    use_label = Use(use).label.lower() + " use"
    warnings = []
    if excess:
        warnings.append(EXCESS_WARNING.format(use=use_label, names=_labels(excess)))
        if Permission.WITHDRAW in excess:
            warnings.append(WITHDRAW_WARNING)
    if missing:
        warnings.append(MISSING_WARNING.format(use=use_label, names=_labels(missing)))
    return Assessment(granted=granted, excess=excess, missing=missing, warnings=tuple(warnings))
