"""The operation's card, live: sent after commit to the requester and to every member whose
role may manage operations (owners and admins), through each one's per-organization member
group. Who receives it is decided here, in one place."""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.template.loader import render_to_string

from apps.core.realtime import member_event_on_commit
from apps.exchange.models import Operation
from apps.orgs.permissions import Capability, role_can
from apps.orgs.selectors import org_members


def element_id(operation_id: int) -> str:
    return f"operation-{operation_id}"


def audience(operation: Operation) -> list[int]:
    """User ids: the requester (if still a member) and the members who manage operations."""
    members = org_members(org=operation.org)
    return sorted(
        {
            m.user_id
            for m in members
            if role_can(m.role, Capability.MANAGE_OPERATIONS)
            or m.user_id == operation.requested_by_id
        }
    )


def render_card(operation: Operation) -> str:
    return render_to_string(
        "exchange/operations.html#operation-card",
        {"operation": operation, "events": list(operation.events.all()), "oob": True},
    )


def _publish(operation_id: int) -> None:
    operation = (
        Operation.objects.select_related("org", "requested_by", "credential")
        .filter(pk=operation_id)
        .first()
    )
    if operation is None:
        return
    # Rendered once for everyone; outside a transaction (we run on commit), so it sends at once.
    member_event_on_commit(
        org_id=operation.org_id,
        user_ids=audience(operation),
        parts=[(element_id(operation.pk), render_card(operation))],
    )


def operation_changed_on_commit(operation: Operation) -> None:
    """Publish the operation's current card once the change has committed. Rendered after
    commit, from the database, so the card shows the committed state and history."""
    transaction.on_commit(partial(_publish, operation.pk), robust=True)
