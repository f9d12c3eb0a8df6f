"""Approvals' reactions to changes announced by orgs (apps.orgs.signals). Connected in
ApprovalsConfig.ready(); each runs inside the announcing service's transaction."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.approvals.services import approvals_release_member
from apps.orgs.models import Membership


def on_membership_removed(
    sender: type[Membership],
    *,
    membership: Membership,
    actor: Membership,
    request: HttpRequest | None,
    **kwargs: Any,
) -> None:
    approvals_release_member(membership=membership, actor=actor, request=request)
