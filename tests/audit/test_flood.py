"""Events anyone can trigger are audited at most once a minute per source, with a count."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.audit.chain import GLOBAL_CHAIN
from apps.audit.models import AuditChain, AuditRecord
from apps.audit.selectors import audit_chains_verify
from apps.audit.throttle import audit_record_throttled, flood_keys
from apps.orgs.models import OnboardingApplication

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
APPLY = reverse("onboarding:apply")
FLOODER = "198.51.100.7"


def minute_passes(*, action: str, source: str) -> None:
    """Close the open window, as its expiry a minute later would."""
    redis.Redis.from_url(settings.REDIS_URL).delete(flood_keys(action=action, source=source)[0])


def fail_sign_in(client: Client, n: int) -> None:
    # A different address each time, as a guesser spraying accounts would; none is locked out.
    response = client.post(LOGIN, {"email": f"guess{n}@example.test", "password": "guess"})
    assert response.status_code == 200


def failures() -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(action="auth.sign_in_failed").order_by("seq"))


def test_a_flood_of_failed_sign_ins_from_one_address_leaves_one_record() -> None:
    client = Client(REMOTE_ADDR=FLOODER)
    for n in range(20):
        fail_sign_in(client, n)
    [record] = failures()
    assert (record.ip, record.detail["email"]) == (FLOODER, "guess0@example.test")
    assert "suppressed" not in record.detail
    assert AuditChain.objects.get(key=GLOBAL_CHAIN).last_seq == 1


def test_a_counted_failure_does_not_touch_the_chain_head() -> None:
    client = Client(REMOTE_ADDR=FLOODER)
    fail_sign_in(client, 0)
    with CaptureQueriesContext(connection) as queries:
        fail_sign_in(client, 1)
    touched = [query["sql"] for query in queries if "audit_audit" in query["sql"]]
    assert touched == []


def test_the_next_record_carries_the_count_of_failures_left_out() -> None:
    client = Client(REMOTE_ADDR=FLOODER)
    for n in range(7):
        fail_sign_in(client, n)
    minute_passes(action="auth.sign_in_failed", source=FLOODER)
    fail_sign_in(client, 7)
    first, second = failures()
    assert "suppressed" not in first.detail
    assert (second.detail["email"], second.detail["suppressed"]) == ("guess7@example.test", 6)
    minute_passes(action="auth.sign_in_failed", source=FLOODER)
    fail_sign_in(client, 8)
    assert "suppressed" not in failures()[-1].detail  # the count was taken by the last record
    assert all(report.ok for report in audit_chains_verify())


def test_each_address_has_its_own_window() -> None:
    fail_sign_in(Client(REMOTE_ADDR=FLOODER), 0)
    fail_sign_in(Client(REMOTE_ADDR="2001:db8::1"), 1)
    fail_sign_in(Client(REMOTE_ADDR=FLOODER), 2)
    assert [record.ip for record in failures()] == [FLOODER, "2001:db8::1"]


def test_a_flood_of_onboarding_applications_is_stored_but_audited_once_a_minute() -> None:
    client = Client(REMOTE_ADDR=FLOODER)
    for n in range(5):
        data = {
            "company_name": f"Flood {n}",
            "country": "GB",
            "region": "",
            "first_name": "Ada",
            "last_name": "North",
            "email": f"flood{n}@example.test",
            "business_type": "hedge_fund",
            "assets_under_management": "50m_250m",
        }
        assert client.post(APPLY, data).status_code == 302
        if n == 3:
            minute_passes(action="onboarding.apply", source=FLOODER)
    assert OnboardingApplication.objects.count() == 5
    records = AuditRecord.objects.filter(action="onboarding.apply").order_by("seq")
    assert [(r.detail["company"], r.detail.get("suppressed")) for r in records] == [
        ("Flood 0", None),
        ("Flood 4", 3),
    ]


def test_the_helper_takes_any_source_and_window() -> None:
    first = audit_record_throttled(action="test.flood", source="key-1", window=3600)
    assert first is not None
    assert audit_record_throttled(action="test.flood", source="key-1", window=3600) is None
    assert audit_record_throttled(action="test.flood", source="key-2", window=3600) is not None
    assert audit_record_throttled(action="test.other", source="key-1", window=3600) is not None


def test_without_redis_every_event_is_recorded(settings) -> None:
    # Nothing listens on port 1: the gate cannot be asked, and losing evidence is worse.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert audit_record_throttled(action="test.flood", source="x") is not None
    assert audit_record_throttled(action="test.flood", source="x") is not None
