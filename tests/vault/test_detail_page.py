"""A key's page after revoking it, and the outcome of "Test connection" with its exact time in
the member's time zone (the probe runs against the Kraken sandbox)."""

from __future__ import annotations

import re
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from apps.exchange.tasks import credential_check_task
from apps.vault.models import Credential, Use
from apps.vault.services import credential_create
from apps.vault.views import KEY_ERASED_NOTICE, TEST_NEVER
from tests.factories import master_account

pytestmark = pytest.mark.django_db

TRADING = ["query_funds", "query_open", "query_closed", "query_ledger", "trade", "websocket"]


def url(name: str, **kwargs) -> str:
    return reverse(f"vault:{name}", kwargs={"org": "acme", **kwargs})


@pytest.fixture(autouse=True)
def kraken_is_the_sandbox(settings, sandbox) -> None:
    settings.KRAKEN_API_URL = sandbox.url


def sandbox_key(membership, sandbox, permissions=TRADING) -> Credential:
    key, secret = sandbox.create_key(
        sandbox.create_account({"USD": "1000"}), permissions=permissions
    )
    return credential_create(
        membership=membership,
        label="Desk BTC",
        api_key=key,
        secret=secret,
        otp=None,
        account=master_account(membership.org),
        use=Use.TRADING,
        probe=False,
    )


def in_tokyo(membership) -> None:
    membership.user.time_zone = "Asia/Tokyo"
    membership.user.save(update_fields=["time_zone"])


def test_after_revoking_the_page_says_the_secret_left_the_live_database_and_when(
    trader, client_for, sandbox, settings
) -> None:
    settings.BACKUP_RETENTION_DAYS = 35
    in_tokyo(trader)
    credential = sandbox_key(trader, sandbox)
    response = client_for(trader).post(url("credential-revoke", pk=credential.pk), follow=True)
    html = unescape(response.content.decode())
    credential.refresh_from_db()
    local = credential.revoked_at.astimezone(ZoneInfo("Asia/Tokyo"))
    moment = f"{local:%Y-%m-%d %H:%M:%S} JST (Asia/Tokyo)"
    assert f"This key was revoked on {moment}." in html
    assert KEY_ERASED_NOTICE.format(days=35) in html
    assert "Test connection" not in html  # a revoked key is not tested


def test_test_connection_shows_its_result_and_exact_time_in_the_members_zone(
    trader, client_for, sandbox, django_capture_on_commit_callbacks
) -> None:
    in_tokyo(trader)
    credential = sandbox_key(trader, sandbox)
    client = client_for(trader)
    credential.probe_status = Credential.ProbeStatus.NOT_CHECKED
    credential.save(update_fields=["probe_status"])
    assert TEST_NEVER in client.get(url("credential-detail", pk=credential.pk)).content.decode()

    with django_capture_on_commit_callbacks():
        running = client.post(
            url("credential-test", pk=credential.pk), headers={"HX-Request": "true"}
        ).content.decode()
    # While it runs, the panel says so and polls itself.
    assert "Testing the connection…" in running
    assert 'hx-trigger="every 2s"' in running

    credential_check_task(credential.pk)  # the worker's part
    credential.refresh_from_db()
    fragment = client.get(
        url("credential-detail", pk=credential.pk), headers={"HX-Request": "true"}
    ).content.decode()
    local = credential.permissions_checked_at.astimezone(ZoneInfo("Asia/Tokyo"))
    fragment = unescape(fragment)
    assert (
        "Connection OK: Kraken accepted the key and listed its permissions "
        f"({local:%Y-%m-%d %H:%M:%S} JST (Asia/Tokyo))." in fragment
    )
    assert "every 2s" not in fragment  # done: no more polling


def test_a_failed_test_says_why_and_when(trader, client_for, store_key) -> None:
    # A well-formed key pair the sandbox never issued: Kraken answers "EAPI:Invalid key".
    credential, _ = store_key(trader)
    Credential.objects.filter(pk=credential.pk).update(probe_status="pending")
    credential_check_task(credential.pk)
    html = client_for(trader).get(url("credential-detail", pk=credential.pk)).content.decode()
    match = re.search(r"Connection failed \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\): ([^<]+)", html)
    assert match is not None
    assert "EAPI:Invalid key" in match.group(2)
