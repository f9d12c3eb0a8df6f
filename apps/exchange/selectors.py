"""Reads for the Operations page."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from apps.exchange.models import UNSETTLED, Operation, OperationEvent
from apps.orgs.models import Organization

RECENT_SETTLED = 50


@dataclass(frozen=True)
class OperationsPage:
    unsettled: list[Operation]
    recent: list[Operation]


def _with_history(queryset: QuerySet[Operation]) -> QuerySet[Operation]:
    return queryset.select_related("requested_by", "credential").prefetch_related(
        Prefetch("events", queryset=OperationEvent.objects.order_by("created_at", "id"))
    )


def operations_page(*, org: Organization, recent: int = RECENT_SETTLED) -> OperationsPage:
    """Every unsettled operation (PREPARED, SENDING, UNKNOWN) of `org`, oldest first, and the
    most recent settled ones."""
    mine = Operation.objects.filter(org=org)
    unsettled = _with_history(mine.filter(state__in=UNSETTLED).order_by("created_at", "id"))
    settled = _with_history(mine.exclude(state__in=UNSETTLED).order_by("-updated_at", "-id"))
    return OperationsPage(unsettled=list(unsettled), recent=list(settled[:recent]))


def operation_get(*, org: Organization, pk: int) -> Operation:
    """One operation of `org` (404 for another organization's)."""
    operation = _with_history(Operation.objects.filter(org=org, pk=pk)).first()
    if operation is None:
        raise Http404("No such operation.")
    return operation
