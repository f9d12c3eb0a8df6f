"""The registry of approval kinds. Each app that asks for approvals registers its kinds in its
AppConfig.ready(): what runs at quorum (`handler`), how a request reads to an approver
(`describe`), the subject's current state (`fingerprint`, re-checked at decision and execution)
and, where the value can move (a price), its current value for re-evaluating the tier."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from apps.orgs.permissions import Role

if TYPE_CHECKING:
    from apps.approvals.models import ApprovalRequest


@dataclass(frozen=True)
class TierSpec:
    min_value: Decimal
    approvals: int
    roles: tuple[str, ...]
    owner_required: bool = False


@dataclass(frozen=True)
class ApprovalKind:
    key: str
    label: str
    handler: Callable[[ApprovalRequest], None]
    describe: Callable[[ApprovalRequest], str]
    fingerprint: Callable[[ApprovalRequest], str]
    current_value: Callable[[ApprovalRequest], Decimal | None] | None = None
    default_tiers: tuple[TierSpec, ...] = field(
        default=(TierSpec(Decimal(0), 1, (Role.OWNER,), owner_required=True),)
    )
    default_expiry_hours: int = 72
    # Whether owners may edit its policy (the policy of policy changes is fixed).
    editable: bool = True


_kinds: dict[str, ApprovalKind] = {}


def approval_kind_register(
    kind: str,
    handler: Callable[[ApprovalRequest], None],
    describe: Callable[[ApprovalRequest], str],
    *,
    label: str,
    fingerprint: Callable[[ApprovalRequest], str],
    current_value: Callable[[ApprovalRequest], Decimal | None] | None = None,
    default_tiers: tuple[TierSpec, ...] | None = None,
    default_expiry_hours: int = 72,
    editable: bool = True,
) -> ApprovalKind:
    registered = ApprovalKind(
        key=kind,
        label=label,
        handler=handler,
        describe=describe,
        fingerprint=fingerprint,
        current_value=current_value,
        default_expiry_hours=default_expiry_hours,
        editable=editable,
        **({"default_tiers": default_tiers} if default_tiers else {}),
    )
    _kinds[kind] = registered
    return registered


def approval_kind_get(kind: str) -> ApprovalKind:
    try:
        return _kinds[kind]
    except KeyError:
        raise LookupError(f"Unknown approval kind {kind!r}: register it first.") from None


def approval_kinds() -> list[ApprovalKind]:
    return sorted(_kinds.values(), key=lambda kind: kind.key)
