"""The organization's audit trail: a filterable page and a CSV export of the same selection."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from asgiref.sync import sync_to_async
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from apps.audit.forms import AuditFilterForm
from apps.audit.models import AuditRecord
from apps.audit.presentation import DetailField, action_title, detail_fields
from apps.audit.selectors import (
    AuditFilters,
    audit_actor_emails,
    audit_export_batch,
    audit_record_page,
    audit_security_events,
)
from apps.audit.services import audit_record
from apps.core.access import login_view
from apps.orgs.access import org_view
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Capability

BAD_PAGE = "The page marker must be a positive whole number."
BAD_FILTERS = "Correct the filters to see the matching records."
CSV_HEADER = (
    "seq",
    "time",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target",
    "ip",
    "detail",
    "hash",
)
# A spreadsheet runs a cell starting with one of these as a formula: exports neutralise them.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _filter_form(request: HttpRequest, membership: Membership) -> AuditFilterForm:
    """The filters, with dates read as days in the reader's time zone (TimezoneMiddleware)."""
    data = request.GET if any(key in request.GET for key in AuditFilterForm.base_fields) else None
    return AuditFilterForm(
        data, actors=audit_actor_emails(org=membership.org), tz=timezone.get_current_timezone()
    )


FIELDS_SHOWN = 3  # detail fields shown before the rest fold into <details>


@dataclass(frozen=True)
class RecordRow:
    """One row of the trail as the page shows it, formatted here rather than by template
    filters: with 50 rows a page, the filters were most of the page's rendering time."""

    record: AuditRecord
    iso_time: str
    time: str
    title: str  # a readable name for the action, or ""
    fields: list[DetailField]  # shown at once
    more_fields: list[DetailField]  # folded


def _rows(records: list[AuditRecord]) -> list[RecordRow]:
    rows = []
    for record in records:
        created = timezone.localtime(record.created_at)
        fields = detail_fields(record.detail)
        # Fold only when it saves at least two lines: "1 more" behind a click helps nobody.
        shown = fields if len(fields) <= FIELDS_SHOWN + 1 else fields[:FIELDS_SHOWN]
        rows.append(
            RecordRow(
                record=record,
                iso_time=created.isoformat(),
                time=created.strftime("%Y-%m-%d %H:%M:%S"),
                title=action_title(record.action),
                fields=shown,
                more_fields=fields[len(shown) :],
            )
        )
    return rows


def _query_without(request: HttpRequest, *keys: str) -> str:
    params = request.GET.copy()
    for key in keys:
        params.pop(key, None)
    return params.urlencode()


# Everyone in the organization may read the trail: it shows who did what, which is what an
# approver or viewer needs to trust the desk's actions, and it never holds secrets (the audit
# service refuses secret-looking detail keys), so VIEW rather than MANAGE_MEMBERS.
@require_GET
@org_view(Capability.VIEW)
def record_list(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    before_raw = request.GET.get("before", "")
    try:
        before = int(before_raw) if before_raw else None
    except ValueError:
        return HttpResponseBadRequest(BAD_PAGE)
    if before is not None and not 0 < before < 2**63:
        return HttpResponseBadRequest(BAD_PAGE)
    form = _filter_form(request, membership)
    valid = form.is_bound is False or form.is_valid()
    page = None
    if valid:
        filters = form.filters() if form.is_bound else AuditFilters()
        page = audit_record_page(org=membership.org, filters=filters, before=before)
    template = "audit/record_list.html"
    if request.htmx and not request.htmx.boosted:
        # The filter form swaps the form and table (to show field errors); page links the table.
        template += "#audit-trail" if request.htmx.target == "audit-trail" else "#record-table"
    return render(
        request,
        template,
        {
            "org": membership.org,
            "form": form,
            "page": page,
            "rows": _rows(page.records) if page is not None else [],
            "tz": form.tz,
            "query": _query_without(request, "before"),
            "bad_filters": BAD_FILTERS,
        },
    )


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_row(record: AuditRecord, tz: tzinfo) -> list[str]:
    # Real characters ("Zürich", "…"), not \u escapes: the file is UTF-8 and read by people.
    detail = json.dumps(record.detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    values = (
        record.seq,
        record.created_at.astimezone(tz).isoformat(),
        record.actor_email,
        record.action,
        record.target_type,
        record.target_id,
        record.target_repr,
        record.ip,
        detail,
        record.hash,
    )
    return [_cell(value) for value in values]


async def _csv_stream(
    org: Organization, filters: AuditFilters, up_to_seq: int, tz: tzinfo
) -> AsyncIterator[str]:
    """The CSV, read in batches so memory stays flat however long the trail.

    An async iterator, because the portal runs under ASGI, where Django would first read a
    synchronous iterator whole into memory.
    """
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    after_seq = 0
    while True:
        batch = await sync_to_async(audit_export_batch)(
            org=org, filters=filters, after_seq=after_seq, up_to_seq=up_to_seq
        )
        if not batch:
            return
        yield "".join(writer.writerow(_csv_row(record, tz)) for record in batch)
        after_seq = batch[-1].seq


@require_GET
@org_view(Capability.VIEW)
def record_export(request: HttpRequest, membership: Membership) -> HttpResponseBase:
    form = _filter_form(request, membership)
    if form.is_bound and not form.is_valid():
        return HttpResponseBadRequest(BAD_FILTERS + " " + form.errors.as_text())
    filters = form.filters() if form.is_bound else AuditFilters()
    # The export is itself on record; it covers everything written before it.
    export = audit_record(
        action="audit.export",
        actor=membership,
        request=request,
        detail={"filters": {k: v for k, v in form.data.items() if k in form.fields and v}},
    )
    stream = _csv_stream(membership.org, filters, export.seq - 1, form.tz)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
    filename = f"audit-{membership.org.slug}-{stamp}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# A person's own security events live in the global chain (they belong to no organization):
# every signed-in user reads theirs, and only theirs.
@require_GET
@login_view
def security_activity(request: HttpRequest) -> HttpResponse:
    records = audit_security_events(user=request.user)  # type: ignore[arg-type]
    return render(
        request,
        "audit/security_activity.html",
        {"rows": _rows(records), "tz": timezone.get_current_timezone()},
    )
