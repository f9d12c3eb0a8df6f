"""Least privilege: which Kraken calls each intended use makes, the key permissions those calls
need, which permissions are excess, and which role may hold a key for which use.

Kraken's advice is to give a key only the permissions its job needs; a trading key that can
withdraw turns a leaked key into lost funds. So the table below starts from the calls: each
use lists the private methods the portal makes with it, each with the permission Kraken's
spec names for it (`../shared/kraken/spot-rest/openapi_v3.yaml`, "API Key Permissions
Required"; FACTS.md §4). What a use needs is derived from its calls, never written twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from apps.orgs.permissions import Capability, role_can
from apps.vault.models import Permission, Use

P = Permission

# {use: {method: permissions it needs (all of them)}}. Where the spec accepts one of two
# permissions ("open or closed, depending on the order's status"), both are listed, because
# reconciliation looks orders up in either state.
CALLS: dict[str, dict[str, frozenset[str]]] = {
    Use.TRADING: {
        "Balance": frozenset({P.QUERY_FUNDS}),
        # Reconciliation: finding an order by its cl_ord_id, open or already closed.
        "OpenOrders": frozenset({P.QUERY_OPEN}),
        "ClosedOrders": frozenset({P.QUERY_CLOSED}),
        "QueryOrders": frozenset({P.QUERY_OPEN, P.QUERY_CLOSED}),
        "TradesHistory": frozenset({P.QUERY_CLOSED}),
        "AddOrder": frozenset({P.TRADE}),
        "AmendOrder": frozenset({P.TRADE}),
        "CancelOrder": frozenset({P.TRADE}),
        "CancelAll": frozenset({P.TRADE}),
        "CancelAllOrdersAfter": frozenset({P.TRADE}),
        # The private `executions` and `balances` channels (WebSocket v2) need a token; the
        # streams read the account through its designated trading key (apps/exchange).
        "GetWebSocketsToken": frozenset({P.WEBSOCKET}),
        # Balances without the streams (exchange.services.balances_refresh).
        "BalanceEx": frozenset({P.QUERY_FUNDS}),
        "Earn/Allocations": frozenset({P.QUERY_FUNDS}),
        "Earn/Strategies": frozenset(),
    },
    Use.FUNDING: {
        "Balance": frozenset({P.QUERY_FUNDS}),
        "DepositAddresses": frozenset({P.QUERY_FUNDS}),
        "DepositStatus": frozenset({P.QUERY_FUNDS}),
        "WithdrawMethods": frozenset({P.QUERY_FUNDS, P.WITHDRAW}),
        "WithdrawAddresses": frozenset({P.QUERY_FUNDS, P.WITHDRAW}),
        "WithdrawInfo": frozenset({P.QUERY_FUNDS, P.WITHDRAW}),
        "Withdraw": frozenset({P.WITHDRAW}),
        "WithdrawStatus": frozenset({P.WITHDRAW}),
        "WithdrawCancel": frozenset({P.WITHDRAW}),
        "AccountTransfer": frozenset({P.WITHDRAW}),
        # Following subaccount transfers and withdrawals in the ledger.
        "Ledgers": frozenset({P.QUERY_LEDGER}),
        "QueryLedgers": frozenset({P.QUERY_LEDGER}),
        # The private `balances` channel (WebSocket v2), for live balances.
        "GetWebSocketsToken": frozenset({P.WEBSOCKET}),
    },
    Use.READ_ONLY: {
        "Balance": frozenset({P.QUERY_FUNDS}),
        "TradeVolume": frozenset({P.QUERY_FUNDS}),
    },
}

# Calls a use may make when the key happens to allow them, without needing them: a missing
# one costs a feature, never safety.
OPTIONAL_CALLS: dict[str, dict[str, frozenset[str]]] = {
    Use.TRADING: {
        "TradeVolume": frozenset({P.QUERY_FUNDS}),
        # The streams' ledger gap fill after a reconnect (skipped without the permission).
        "Ledgers": frozenset({P.QUERY_LEDGER}),
    },
    Use.FUNDING: {
        "DepositMethods": frozenset({P.QUERY_FUNDS, P.DEPOSIT}),
        "Earn/Allocate": frozenset({P.EARN}),
        "Earn/Deallocate": frozenset({P.EARN}),
        "Earn/Allocations": frozenset({P.QUERY_FUNDS}),
    },
    Use.READ_ONLY: {
        "OpenOrders": frozenset({P.QUERY_OPEN}),
        "ClosedOrders": frozenset({P.QUERY_CLOSED}),
        "Ledgers": frozenset({P.QUERY_LEDGER}),
        "GetWebSocketsToken": frozenset({P.WEBSOCKET}),
    },
}


def _union(calls: Mapping[str, frozenset[str]]) -> frozenset[str]:
    return frozenset().union(*calls.values())


_QUERY = frozenset({P.QUERY_FUNDS, P.QUERY_OPEN, P.QUERY_CLOSED, P.QUERY_LEDGER})

# What each use needs to do its job: the permissions of its calls.
NEEDED: dict[str, frozenset[str]] = {use: _union(calls) for use, calls in CALLS.items()}

# What each use may have without a warning: its needs, its optional calls and harmless reads.
ALLOWED: dict[str, frozenset[str]] = {
    use: NEEDED[use] | _union(OPTIONAL_CALLS[use]) | _QUERY for use in CALLS
}

# Excess permissions that can move or commit funds. A key holding one its use does not need
# is refused unless the organization allows over-privileged keys; other excess (Deposit, which
# can only show deposit addresses) is a warning.
POWERS = frozenset({P.TRADE, P.WITHDRAW, P.EARN})

# The capability a member's role needs to hold (and use) a key for each use.
USE_CAPABILITY: dict[str, Capability] = {
    Use.TRADING: Capability.TRADE,
    Use.FUNDING: Capability.REQUEST_FUNDING,
    Use.READ_ONLY: Capability.VIEW,
}


def role_allows_use(role: str, use: str) -> bool:
    return use in USE_CAPABILITY and role_can(role, USE_CAPABILITY[use])


def uses_for_role(role: str) -> list[str]:
    return [use for use in Use.values if role_allows_use(role, use)]


EXCESS_WARNING = (
    "This key can do more than {use} needs: {names}. Kraken recommends giving each key only the "
    "permissions its job needs; edit the key on Kraken and test it again."
)
MISSING_WARNING = "This key lacks what {use} needs: {names}."
WITHDRAW_WARNING = (
    "This key can withdraw funds. If it leaks, funds can leave the account; keep withdrawal "
    "rights on funding keys only."
)
REFUSED_REASON = (
    "Refused: this {use} key can also {names}, which {use} never needs, and the organization "
    "does not accept over-privileged keys. Create a key on Kraken with only the permissions "
    "listed for {use} and add it again."
)
ACCEPTED_REASON = (
    "Accepted although this {use} key can also {names}: the organization allows "
    "over-privileged keys."
)


@dataclass(frozen=True)
class Assessment:
    granted: tuple[str, ...]
    excess: tuple[str, ...]
    missing: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def dangerous_excess(self) -> tuple[str, ...]:
        """Excess that can move or commit funds (refused unless the organization allows it)."""
        return tuple(name for name in self.excess if name in POWERS)


def labels(names: tuple[str, ...]) -> str:
    return ", ".join(Permission(name).label for name in names)


def use_label(use: str) -> str:
    return Use(use).label.lower() + " use"


def assess(*, use: str, permissions: Mapping[str, bool | None]) -> Assessment:
    """Compare detected permissions (`{name: granted}`) with what `use` needs."""
    granted = tuple(name for name in Permission.values if permissions.get(name) is True)
    denied = {name for name in Permission.values if permissions.get(name) is False}
    excess = tuple(name for name in granted if name not in ALLOWED[use])
    missing = tuple(name for name in Permission.values if name in NEEDED[use] and name in denied)
    warnings = []
    if excess:
        warnings.append(EXCESS_WARNING.format(use=use_label(use), names=labels(excess)))
        if Permission.WITHDRAW in excess:
            warnings.append(WITHDRAW_WARNING)
    if missing:
        warnings.append(MISSING_WARNING.format(use=use_label(use), names=labels(missing)))
    return Assessment(granted=granted, excess=excess, missing=missing, warnings=tuple(warnings))


def unsettled_powers(*, use: str, permissions: Mapping[str, bool | None]) -> tuple[str, ...]:
    """Powers `use` never needs that the key is not known to lack: granted (True), or left
    undetermined by the probe (None, or never recorded). A key may trade or move funds only
    once each of these is known to be absent, or the organization accepts over-privilege."""
    return tuple(
        name
        for name in Permission.values
        if name in POWERS and name not in ALLOWED[use] and permissions.get(name) is not False
    )


def overprivilege_reason(*, use: str, assessment: Assessment, allowed_by_org: bool) -> str:
    """The reason recorded on a key whose excess includes a power its use never needs."""
    names = labels(assessment.dangerous_excess).lower()
    template = ACCEPTED_REASON if allowed_by_org else REFUSED_REASON
    return template.format(use=use_label(use), names=names)[:300]
