"""The home page's workflow panel (registered by kraken_portal.dashboard): runs waiting for this
member's approval, runs that recently failed or were not run, and the next runs. Shown to the
roles that may see workflows; when there is nothing, it says what to do next."""

from __future__ import annotations

from django.http import HttpRequest

from apps.orgs.dashboard import DashboardPanel
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability
from apps.schedules.selectors import runs_failed_recently, runs_waiting_for, workflows_next

TITLE = "Scheduled workflows"


def workflows_panel(request: HttpRequest, membership: Membership) -> DashboardPanel | None:
    if not membership.can(Capability.VIEW):
        return None
    waiting = runs_waiting_for(membership=membership)
    failed = runs_failed_recently(org=membership.org)
    upcoming = workflows_next(org=membership.org)
    return DashboardPanel(
        "schedules/_dashboard.html",
        TITLE,
        {
            "waiting": waiting,
            "failed": failed,
            "upcoming": upcoming,
            "can_create": membership.can(Capability.REQUEST_FUNDING),
            "empty": not (waiting or failed or upcoming),
        },
    )
