"""The trail reads as a person expects: security events named, details as labelled fields, the
CSV in real characters; and each person can read their own security events."""

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.audit.presentation import detail_fields
from apps.audit.services import audit_record

pytestmark = pytest.mark.django_db

LIST = reverse("audit:record-list", kwargs={"org": "acme"})
EXPORT = reverse("audit:record-export", kwargs={"org": "acme"})
ACTIVITY = reverse("security:activity")


def test_details_become_labelled_fields_with_readable_values() -> None:
    fields = detail_fields(
        {
            "second_factor": "recovery_code",
            "recovery_codes_left": 3,
            "locked_out": True,
            "granted": ["query_funds", "trade"],
            "brand_new_key": None,
        }
    )
    assert [(f.label, f.value) for f in fields] == [
        ("Second factor", "recovery code"),
        ("Recovery codes left", "3"),
        ("Locked out", "yes"),
        ("Granted", "query_funds, trade"),
        ("Brand new key", "—"),
    ]


def test_a_long_detail_folds_after_three_fields(owner, viewer, client_for) -> None:
    audit_record(
        action="vault.credential.probe",
        actor=owner,
        detail={
            "outcome": "checked",
            "granted": ["trade"],
            "denied": [],
            "excess": [],
            "error": "",
        },
    )
    html = client_for(viewer).get(LIST).content.decode()
    assert "<summary>2 more</summary>" in html
    assert "<dt>Outcome</dt><dd>checked</dd>" in html


@pytest.fixture
async def close_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
async def test_the_csv_carries_real_characters_not_escapes(owner, viewer, client_for) -> None:
    await sync_to_async(audit_record)(
        action="member.note", actor=owner, detail={"note": "Zürich desk… 東京"}
    )
    client = await sync_to_async(client_for)(viewer)
    async_client = AsyncClient()
    async_client.cookies = client.cookies
    response = await async_client.get(EXPORT)
    body = b"".join([chunk async for chunk in response.streaming_content]).decode("utf-8")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[1][8] == '{"note":"Zürich desk… 東京"}'
    assert "\\u" not in body


def test_a_member_reads_their_own_security_events_as_sentences(owner, trader, client_for) -> None:
    audit_record(action="auth.two_factor_disabled", actor=trader.user)
    audit_record(
        action="auth.recovery_code_used", actor=trader.user, detail={"recovery_codes_left": 9}
    )
    audit_record(action="auth.password_changed", actor=owner.user)  # someone else's
    html = client_for(trader).get(ACTIVITY).content.decode()
    assert "Two-factor authentication turned off" in html
    assert "Recovery code used" in html
    assert "<dt>Recovery codes left</dt><dd>9</dd>" in html
    assert "Password changed" not in html


def test_security_activity_needs_sign_in_and_only_reads(trader, client_for) -> None:
    response = Client().get(ACTIVITY)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert client_for(trader).post(ACTIVITY).status_code == 405


def test_the_profile_links_to_security_activity(trader, client_for) -> None:
    html = client_for(trader).get(reverse("accounts:profile")).content.decode()
    assert f'href="{ACTIVITY}"' in html


def test_security_events_in_the_global_chain_stay_out_of_the_organizations_trail(
    trader, viewer, client_for
) -> None:
    audit_record(action="auth.two_factor_disabled", actor=trader.user)
    assert "auth.two_factor_disabled" not in client_for(viewer).get(LIST).content.decode()
    assert AuditRecord.objects.filter(action="auth.two_factor_disabled", org=None).exists()
