"""The audit trail page and its CSV export, for every kind of visitor."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.forms import DATE_RANGE_REVERSED
from apps.audit.models import AuditRecord
from apps.audit.services import audit_record
from apps.audit.views import BAD_FILTERS, BAD_PAGE, CSV_HEADER
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

LIST = reverse("audit:record-list", kwargs={"org": "acme"})
EXPORT = reverse("audit:record-export", kwargs={"org": "acme"})


@pytest.fixture
def trail(owner, trader, treasurer, outsider) -> list[AuditRecord]:
    return [
        audit_record(action="member.invite", actor=owner, target=trader, detail={"role": "trader"}),
        audit_record(
            action="withdrawal.request",
            actor=treasurer,
            detail={"amount": "1.25000000", "asset": "BTC"},
        ),
        audit_record(action="withdrawal.approve", actor=owner, detail={"id": 7}),
        audit_record(
            action="order.place",
            actor=trader,
            target=OrganizationFactory(name='=HYPERLINK("http://x.test")', slug="evil"),
            detail={"note": "=HYPERLINK(1)"},
        ),
        # Another organization's record must never show.
        audit_record(action="withdrawal.request", actor=outsider, detail={"leak": "no"}),
    ]


def actions_on(html: str) -> list[str]:
    return [
        a
        for a in ("member.invite", "withdrawal.request", "withdrawal.approve", "order.place")
        if a in html
    ]


def test_a_viewer_reads_the_whole_trail_of_their_organization(trail, viewer, client_for) -> None:
    response = client_for(viewer).get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert actions_on(html) == [
        "member.invite",
        "withdrawal.request",
        "withdrawal.approve",
        "order.place",
    ]
    assert "treasurer@acme.test" in html
    # Detail reads as labelled fields, not JSON.
    assert "<dt>Amount</dt><dd>1.25000000</dd>" in html
    assert "<dt>Asset</dt><dd>BTC</dd>" in html
    assert "&quot;amount&quot;" not in html
    assert "leak" not in html
    assert "outsider@other.test" not in html


def test_times_are_shown_in_the_readers_time_zone(trail, viewer, client_for) -> None:
    viewer.user.time_zone = "Asia/Tokyo"
    viewer.user.save(update_fields=["time_zone"])
    html = client_for(viewer).get(LIST).content.decode()
    local = trail[0].created_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert local.strftime("%Y-%m-%d %H:%M:%S") in html
    assert "Time (Asia/Tokyo)" in html


def test_an_outsider_gets_404(trail, outsider, client_for) -> None:
    assert client_for(outsider).get(LIST).status_code == 404
    assert client_for(outsider).get(EXPORT).status_code == 404


def test_an_anonymous_visitor_is_sent_to_sign_in(trail) -> None:
    for url in (LIST, EXPORT):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))


def test_only_get_is_allowed(viewer, client_for) -> None:
    client = client_for(viewer)
    assert client.post(LIST).status_code == 405
    assert client.post(EXPORT).status_code == 405


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"action": "withdrawal."}, ["withdrawal.request", "withdrawal.approve"]),
        ({"actor": "owner@acme.test"}, ["member.invite", "withdrawal.approve"]),
        ({"target": "trader@acme"}, ["member.invite"]),
        ({"action": "withdrawal.", "actor": "treasurer@acme.test"}, ["withdrawal.request"]),
    ],
)
def test_filters_narrow_the_list(trail, viewer, client_for, query, expected) -> None:
    html = client_for(viewer).get(LIST, query).content.decode()
    assert actions_on(html) == expected


def test_the_date_range_is_days_in_the_readers_time_zone(trail, viewer, client_for) -> None:
    viewer.user.time_zone = "Pacific/Kiritimati"  # UTC+14: "today" there is often tomorrow in UTC
    viewer.user.save(update_fields=["time_zone"])
    today = timezone.now().astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    client = client_for(viewer)
    same_day = client.get(LIST, {"since": today, "until": today}).content.decode()
    assert len(actions_on(same_day)) == 4
    tomorrow = client.get(LIST, {"since": today + timedelta(days=1)}).content.decode()
    assert actions_on(tomorrow) == []
    assert "No records match." in tomorrow
    yesterday = client.get(LIST, {"until": today - timedelta(days=1)}).content.decode()
    assert actions_on(yesterday) == []


def test_a_reversed_date_range_is_reported_next_to_the_field(trail, viewer, client_for) -> None:
    response = client_for(viewer).get(LIST, {"since": "2026-02-02", "until": "2026-02-01"})
    assert response.status_code == 200
    html = response.content.decode()
    assert DATE_RANGE_REVERSED in html
    assert BAD_FILTERS in html
    assert actions_on(html) == []


def test_an_unknown_actor_is_a_field_error_not_a_crash(trail, viewer, client_for) -> None:
    response = client_for(viewer).get(LIST, {"actor": "nobody@x.test"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.parametrize("before", ["abc", "1.5", "-3", "0", str(10**30)])
def test_a_bad_page_marker_is_a_400_with_a_reason(viewer, client_for, before) -> None:
    response = client_for(viewer).get(LIST, {"before": before})
    assert response.status_code == 400
    assert response.content.decode() == BAD_PAGE


def test_pages_follow_the_chain_backwards_without_gaps(
    owner, viewer, client_for, monkeypatch
) -> None:
    for i in range(120):
        audit_record(action="test.page", actor=owner, detail={"i": i})
    client = client_for(viewer)
    seen: list[int] = []
    params: dict[str, object] = {"action": "test."}
    for _ in range(5):
        response = client.get(LIST, params)
        page = response.context["page"]
        seen += [record.seq for record in page.records]
        if page.next_before is None:
            break
        assert f"before={page.next_before}" in response.content.decode()
        params = {"action": "test.", "before": page.next_before}
    assert seen == list(range(120, 0, -1))


def test_htmx_gets_only_the_table_or_the_form_and_table(trail, viewer, client_for) -> None:
    client = client_for(viewer)
    table = client.get(LIST, {"before": 100}, headers={"HX-Request": "true"}).content.decode()
    assert table.lstrip().startswith('<div id="record-table"')
    assert "<form" not in table
    assert "<html" not in table
    trail_part = client.get(
        LIST, {"action": "order."}, headers={"HX-Request": "true", "HX-Target": "audit-trail"}
    ).content.decode()
    assert trail_part.lstrip().startswith('<div id="audit-trail"')
    assert actions_on(trail_part) == ["order.place"]


def test_the_filter_form_works_without_javascript(trail, viewer, client_for) -> None:
    html = client_for(viewer).get(LIST).content.decode()
    assert f'method="get" action="{LIST}"' in html
    assert 'href="/o/acme/audit/export.csv"' in html


async def _export(client: Client, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
    """Fetch the export through Django's ASGI handler, as uvicorn serves it."""
    async_client = AsyncClient()
    async_client.cookies = client.cookies
    response = await async_client.get(EXPORT, query)
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()
    return response.status_code, dict(response.headers), body


@pytest.fixture
async def close_thread_connections():
    """Close the database connection Django's sync-to-async thread opened during the test."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
async def test_a_viewer_exports_the_filtered_trail_as_csv_and_the_export_is_audited(
    trail, viewer, client_for
) -> None:
    client = await sync_to_async(client_for)(viewer)
    status, headers, body = await _export(client, {"action": "withdrawal."})
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"].startswith('attachment; filename="audit-acme-')
    rows = list(csv.reader(io.StringIO(body)))
    assert tuple(rows[0]) == CSV_HEADER
    assert [(row[2], row[3]) for row in rows[1:]] == [
        ("treasurer@acme.test", "withdrawal.request"),
        ("owner@acme.test", "withdrawal.approve"),
    ]
    assert rows[1][8] == '{"amount":"1.25000000","asset":"BTC"}'

    export = await AuditRecord.objects.filter(action="audit.export").aget()
    assert export.actor_email == "viewer@acme.test"
    assert export.detail == {"filters": {"action": "withdrawal."}}
    assert export.org_id == viewer.org_id


@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
async def test_exported_cells_cannot_run_as_spreadsheet_formulas(trail, viewer, client_for) -> None:
    client = await sync_to_async(client_for)(viewer)
    _, _, body = await _export(client, {"action": "order."})
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[1][6] == """'=HYPERLINK("http://x.test")"""
    assert rows[1][8] == '{"note":"=HYPERLINK(1)"}'  # JSON starts with "{": harmless as is
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_an_invalid_export_filter_is_a_400_and_nothing_is_recorded(
    trail, viewer, client_for
) -> None:
    response = client_for(viewer).get(EXPORT, {"since": "2026-02-02", "until": "2026-02-01"})
    assert response.status_code == 400
    assert DATE_RANGE_REVERSED in response.content.decode()
    assert not AuditRecord.objects.filter(action="audit.export").exists()
