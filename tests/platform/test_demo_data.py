"""demo_data never runs in production or against anything but the sandbox, and the password it
prints is always the one that works. The demo: a master and a subaccount on the sandbox and in
the portal, members' keys on them and designated keys for each account; idempotent, and it
retires the keys of the older demo."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.exchange.key_check import credential_check
from apps.kraken.client import kraken_private
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.orgs.permissions import Role
from apps.orgs.services.memberships import membership_remove
from apps.vault.models import Credential, Permission, Use
from apps.vault.policy import NEEDED, assess
from apps.vault.selectors import designated_credential
from apps.vault.services import KeyPurpose, credential_key_for_task
from kraken_portal.management.commands import demo_data
from kraken_portal.management.commands.demo_data import (
    DEMO_KEYS,
    DEMO_MASTER_ID,
    DEMO_ORG_SLUG,
    DEMO_SUBACCOUNT_LABEL,
)
from tests.factories import UserFactory
from tests.platform.test_deploy import REPO, SECURE_REDIS_URL, production_env
from tests.plugins.sandbox import SandboxProcess, free_port
from tests.vault.conftest import KEK_1

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")


def _demo_users() -> int:
    return User.objects.filter(email__endswith="@" + demo_data.DEMO_DOMAIN).count()


def _run(**options: Any) -> str:
    out = StringIO()
    call_command("demo_data", stdout=out, **options)
    return out.getvalue()


def _signs_in(email: str, password: str) -> bool:
    response = Client().post(LOGIN, {"email": email, "password": password})
    return response.status_code == 302


class _Impostor(BaseHTTPRequestHandler):
    """A web server that is not the sandbox: the real Kraken's 404, or a health route that
    answers but names no sandbox."""

    body: bytes | None = None
    seen_authorization: list[str] = []

    def do_GET(self) -> None:
        if auth := self.headers.get("Authorization"):
            self.seen_authorization.append(auth)
        if self.body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(params=["404", "healthy-but-no-sandbox"])
def impostor(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type(
        "Handler",
        (_Impostor,),
        {
            "body": None if request.param == "404" else json.dumps({"status": "ok"}).encode(),
            "seen_authorization": [],
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    assert handler.seen_authorization == []  # the sandbox's admin token never left


def test_it_refuses_a_kraken_url_that_does_not_answer_as_the_sandbox(
    impostor: str, settings: Any
) -> None:
    settings.KRAKEN_API_URL = impostor
    with pytest.raises(CommandError, match="is not the Kraken sandbox"):
        _run(wait_for_sandbox=True, timeout=30)
    assert _demo_users() == 0


def test_it_refuses_a_kraken_url_where_nothing_answers(settings: Any) -> None:
    settings.KRAKEN_API_URL = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CommandError, match="is not the Kraken sandbox"):
        _run()
    assert _demo_users() == 0


def test_it_refuses_the_real_kraken_url(settings: Any) -> None:
    # The default URL: refused whether or not this machine can reach Kraken.
    settings.KRAKEN_API_URL = "https://api.kraken.com"
    with pytest.raises(CommandError, match="is not the Kraken sandbox"):
        _run()
    assert _demo_users() == 0


def test_it_refuses_the_production_settings_even_with_the_sandbox(
    sandbox: SandboxProcess,
) -> None:
    env = production_env(
        KRAKEN_API_URL=sandbox.url,
        # A database that does not exist: had the command gone further than its first check,
        # it would fail on the connection, with another message.
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/portal_demo_must_not_exist",
        DEBUG="1",  # not what the refusal looks at
        # Production's own checks (a Redis with a password) pass, so the refusal is demo_data's.
        REDIS_URL=SECURE_REDIS_URL,
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "demo_data", "--wait-for-sandbox"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "refuses to run with the production settings" in result.stderr, result.stderr


def test_it_refuses_a_settings_module_that_imports_production(
    sandbox: SandboxProcess, settings: Any
) -> None:
    settings.KRAKEN_API_URL = sandbox.url
    settings.PRODUCTION = True  # what `from kraken_portal.settings.production import *` brings
    with pytest.raises(CommandError, match="production settings"):
        _run()
    assert _demo_users() == 0


def test_a_second_run_with_another_password_lets_the_demo_users_sign_in_with_it(
    sandbox: SandboxProcess, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.KRAKEN_API_URL = sandbox.url
    someone = UserFactory(email="someone@example.test")
    their_hash = someone.password

    monkeypatch.setenv("DEMO_PASSWORD", "first demo password")
    assert "Password for every login: first demo password" in _run()
    assert _signs_in("owner@demo.test", "first demo password")

    monkeypatch.setenv("DEMO_PASSWORD", "second demo password")
    assert "Password for every login: second demo password" in _run()
    for email in ["owner@demo.test", "viewer@demo.test", demo_data.STAFF_EMAIL]:
        assert _signs_in(email, "second demo password"), email
    assert not _signs_in("trader@demo.test", "first demo password")
    # Only the demo users' passwords are reset.
    someone.refresh_from_db()
    assert someone.password == their_hash


def test_a_run_after_a_demo_member_was_removed_brings_them_back(
    sandbox: SandboxProcess, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.KRAKEN_API_URL = sandbox.url
    monkeypatch.setenv("DEMO_PASSWORD", "demo password")
    _run()
    owner = Membership.objects.get(user__email="owner@demo.test")
    trader = Membership.objects.get(user__email="trader@demo.test")
    membership_remove(membership=trader, actor=owner)

    _run()  # Used to abort with an IntegrityError, so `make run` failed for ever after.

    trader = Membership.all_objects.get(pk=trader.pk)
    assert trader.is_active
    assert trader.role == Role.TRADER
    assert _signs_in("trader@demo.test", "demo password")


def test_the_demo_funding_key_holds_exactly_what_funding_needs(
    sandbox: SandboxProcess, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.KRAKEN_API_URL = sandbox.url
    settings.PORTAL_KEYRING = "k1:" + base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("SANDBOX_ADMIN_TOKEN", sandbox.admin_token)
    _run(wait_for_sandbox=True, timeout=30)

    credential = Credential.objects.get(owner__user__email="treasurer@demo.test")
    assert credential.use == Use.FUNDING
    # What the portal itself finds on Kraken's side (the sandbox), not what the demo meant.
    credential_check(credential_id=credential.pk)
    credential.refresh_from_db()
    assessment = assess(use=Use.FUNDING, permissions=credential.permissions)
    assert assessment.warnings == ()
    # Plus Earn: staking's Allocate/Deallocate, an optional call of funding keys (no warning).
    assert set(assessment.granted) == {*NEEDED[Use.FUNDING], Permission.EARN}


def test_the_demo_keys_are_checked_so_the_trading_key_can_trade(
    sandbox: SandboxProcess, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.KRAKEN_API_URL = sandbox.url
    settings.PORTAL_KEYRING = "k1:" + base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("SANDBOX_ADMIN_TOKEN", sandbox.admin_token)
    # No worker runs here (nor are on-commit tasks sent): demo_data itself must check them.
    _run(wait_for_sandbox=True, timeout=30)

    credentials = list(Credential.objects.filter(status=Credential.Status.ACTIVE))
    assert len(credentials) == len(DEMO_KEYS)
    assert {c.probe_status for c in credentials} == {Credential.ProbeStatus.DONE}
    # The members' trading keys and the designated ones (unattended work) alike may trade.
    trading = Credential.objects.filter(use=Use.TRADING, status=Credential.Status.ACTIVE)
    assert trading.filter(designated=True).exists()
    assert trading.filter(owner__user__email="trader@demo.test").exists()
    for credential in trading:
        key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.TRADE)
        assert key.api_key == credential.api_key


def test_no_process_of_a_deployment_loads_the_demo() -> None:
    """The Procfile is what a deployment runs; only `make run` (scripts/run.py) loads the demo,
    once, before it starts the processes."""
    procfile = (REPO / "Procfile").read_text()
    assert "demo_data" not in procfile
    run_script = (REPO / "scripts" / "run.py").read_text()
    assert '"demo_data", "--wait-for-sandbox"' in run_script


@pytest.fixture
def demo_env(sandbox: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.KRAKEN_API_URL = sandbox.url
    settings.KRAKEN_TIER = "intermediate"
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    monkeypatch.setenv("SANDBOX_ADMIN_TOKEN", sandbox.admin_token)
    return sandbox


def test_the_demo_has_a_master_and_a_subaccount_with_members_and_designated_keys(
    demo_env: Any,
) -> None:
    call_command("demo_data", "--wait-for-sandbox", "--timeout", "10", verbosity=0)
    org = Organization.objects.get(slug=DEMO_ORG_SLUG)
    # An installation upgraded from the keys-without-accounts demo: its old key is retired.
    old = Credential.objects.filter(org=org).first()
    assert old is not None
    Credential.objects.filter(pk=old.pk).update(label="Demo sandbox trading key")
    old.refresh_from_db()
    old_key = old.api_key
    # ...and a subaccount from before the sandbox gave subaccounts an IIBAN gets its id.
    KrakenAccount.objects.filter(org=org, kind="subaccount").update(kraken_id="")
    call_command("demo_data", "--wait-for-sandbox", "--timeout", "10", verbosity=0)

    master = KrakenAccount.objects.get(org=org, kind="master")
    sub = KrakenAccount.objects.get(org=org, kind="subaccount")
    assert (master.kraken_id, master.tier) == (DEMO_MASTER_ID, "intermediate")
    assert (sub.label, sub.parent, sub.tier) == (DEMO_SUBACCOUNT_LABEL, master, "intermediate")
    # The subaccount's Kraken id is the IIBAN the sandbox gave it.
    (on_sandbox,) = demo_env.account(DEMO_MASTER_ID)["subaccount_details"]
    assert sub.kraken_id == on_sandbox["iiban"].replace(" ", "")
    assert len(sub.kraken_id) == 16

    active = Credential.objects.filter(org=org, status="active")
    assert active.count() == len(DEMO_KEYS)
    assert active.filter(designated=True).count() == 4
    assert not active.filter(api_key=old_key, label="Demo sandbox trading key").exists()

    # Each account's designated keys act on that account at the sandbox.
    for account, usd in ((master, "1250000"), (sub, "250000")):
        credential = designated_credential(account=account, use=Use.TRADING)
        key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.READ)
        assert key.account_ref == account.counter_ref
        balance = kraken_private(key, "Balance")
        assert Decimal(balance["ZUSD"]) == Decimal(usd)


def test_the_demo_has_earn_on_its_master_account(
    sandbox: SandboxProcess, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.staking.models import StakeRequest

    settings.KRAKEN_API_URL = sandbox.url
    settings.PORTAL_KEYRING = "k1:" + base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("SANDBOX_ADMIN_TOKEN", sandbox.admin_token)
    _run(wait_for_sandbox=True, timeout=30)
    _run(wait_for_sandbox=True, timeout=30)  # idempotent: still one request

    request = StakeRequest.objects.get()
    assert request.requested_by.email == "treasurer@demo.test"
    assert request.strategy_id == "ESRFUO3-Q62XD-WIOIL7"
    # Without a fresh price it waits for the demo approver; with one it went to Kraken.
    assert request.status in {StakeRequest.Status.AWAITING_APPROVAL, StakeRequest.Status.SENDING}


def test_the_demo_has_a_scheduled_workflow_waiting_for_its_approval(demo_env: Any) -> None:
    from apps.approvals.models import ApprovalRequest
    from apps.schedules.models import Workflow

    call_command("demo_data", "--wait-for-sandbox", "--timeout", "10", verbosity=0)
    call_command("demo_data", "--wait-for-sandbox", "--timeout", "10", verbosity=0)  # kept once
    org = Organization.objects.get(slug=DEMO_ORG_SLUG)
    (workflow,) = Workflow.objects.filter(org=org)
    assert workflow.name == demo_data.DEMO_WORKFLOW_NAME
    assert workflow.action == "funding.top_up"
    assert workflow.account == KrakenAccount.objects.get(org=org, kind="subaccount")
    assert workflow.created_by.email == f"treasurer@{demo_data.DEMO_DOMAIN}"
    assert workflow.is_active
    assert workflow.next_slot_at is not None
    approval = workflow.approval_request
    assert approval is not None
    assert approval.status == ApprovalRequest.Status.PENDING
