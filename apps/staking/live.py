"""Staking, live: a request's card (and the holdings it changed) go, after commit, to every
member of the organization who may view it, through each one's member group. Who receives it is
decided here, in one place: staking positions are visible to every role with VIEW."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from django.db import transaction
from django.template.loader import render_to_string

from apps.core.realtime import member_event_on_commit
from apps.orgs.permissions import Capability, role_can
from apps.orgs.selectors import org_members

if TYPE_CHECKING:
    from apps.staking.models import StakeRequest


def element_id(request_id: int) -> str:
    return f"stake-request-{request_id}"


def render_card(row: StakeRequest) -> str:
    from apps.staking.selectors import queue_position

    return render_to_string(
        "staking/overview.html#request-card",
        {"row": row, "oob": True, "position": queue_position(row)},
    )


def render_holdings(org_id: int) -> str:
    from apps.orgs.models import Organization
    from apps.staking.selectors import overview

    org = Organization.objects.get(pk=org_id)
    return render_to_string(
        "staking/overview.html#holdings", {"overview": overview(org=org), "oob": True}
    )


def _publish(request_id: int) -> None:
    from apps.staking.models import StakeRequest

    row = (
        StakeRequest.objects.select_related("org", "account", "requested_by", "operation")
        .filter(pk=request_id)
        .first()
    )
    if row is None:
        return
    audience = [m.user_id for m in org_members(org=row.org) if role_can(m.role, Capability.VIEW)]
    parts = [(element_id(row.pk), render_card(row))]
    if row.status in ("pending", "bonding", "unbonding", "done"):
        parts.append(("staking-holdings", render_holdings(row.org_id)))
    member_event_on_commit(org_id=row.org_id, user_ids=audience, parts=parts)


def request_changed_on_commit(row: StakeRequest) -> None:
    """Publish the request's card once the change has committed (rendered from the database)."""
    transaction.on_commit(partial(_publish, row.pk), robust=True)
