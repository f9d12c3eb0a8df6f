"""Passwords and sessions: a change needs a fresh step-up and ends the other sessions; a reset
by email answers alike for every address and is rate limited; a person can sign out of every
other session; pages with secrets are never cached; views with secrets hide them from error
reports."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse
from django.views.debug import SafeExceptionReporterFilter

from apps.accounts import views
from apps.accounts.services import STEP_UP_SESSION_KEY
from apps.audit.models import AuditRecord
from apps.orgs import views as org_views
from apps.vault import views as vault_views
from tests.accounts.conftest import Person
from tests.conftest import verified_client
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PROFILE = reverse("accounts:profile")
LOGIN = reverse("accounts:login")
CHANGE = reverse("accounts:password-change")
RESET = reverse("accounts:password-reset")
RESET_SENT = reverse("accounts:password-reset-done")
OTHERS = reverse("accounts:sessions-sign-out-others")
NEW_PASSWORD = "a different and long passphrase 7"


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    from kraken_portal.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def _signed_in_elsewhere(person: Person) -> Client:
    return verified_client(person.user)


def _is_signed_out(client: Client) -> bool:
    response = client.get(PROFILE)
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


# Changing the password.


def test_changing_the_password_needs_a_fresh_step_up(signed_in: Client) -> None:
    session = signed_in.session
    session[STEP_UP_SESSION_KEY] = time.time() - settings.STEP_UP_MAX_AGE - 1
    session.save()
    response = signed_in.get(CHANGE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:step-up"))


def test_changing_the_password_ends_the_other_sessions_and_is_audited_and_emailed(
    signed_in: Client,
    person: Person,
    eager_tasks: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    elsewhere = _signed_in_elsewhere(person)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(
            CHANGE,
            {
                "old_password": PASSWORD,
                "new_password1": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
            },
        )
    assert response.status_code == 302
    assert response["Location"] == PROFILE
    assert signed_in.get(PROFILE).status_code == 200  # this session stays
    assert _is_signed_out(elsewhere)
    person.user.refresh_from_db()
    assert person.user.check_password(NEW_PASSWORD)
    assert AuditRecord.objects.filter(action="auth.password_changed").count() == 1
    [notice] = mail.outbox
    assert notice.to == [person.user.email]
    assert NEW_PASSWORD not in notice.body


def test_a_wrong_current_password_changes_nothing(signed_in: Client, person: Person) -> None:
    response = signed_in.post(
        CHANGE,
        {
            "old_password": "not it at all",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 200
    assert "old_password" in response.context["form"].errors
    person.user.refresh_from_db()
    assert person.user.check_password(PASSWORD)


# Resetting it by email.


def _reset(address: str, ip: str = "203.0.113.7", **headers: str) -> tuple[Any, int]:
    """POST the reset form; returns the response and how many tasks it enqueued on commit."""
    client = Client(REMOTE_ADDR=ip)
    with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
        response = client.post(RESET, {"email": address}, headers=headers)
    return response, len(callbacks)


def test_a_reset_answers_alike_whether_or_not_the_address_has_an_account(
    person: Person, eager_tasks: None
) -> None:
    known, known_tasks = _reset(person.user.email)
    unknown, unknown_tasks = _reset("nobody@example.test")
    assert (known.status_code, known["Location"]) == (302, RESET_SENT)
    assert (unknown.status_code, unknown["Location"]) == (302, RESET_SENT)
    # The same work in the request (one task enqueued on commit), whatever the address: the
    # lookup and the sending happen in the worker, so timing does not tell either.
    assert known_tasks == unknown_tasks == 1
    [message] = mail.outbox
    assert message.to == [person.user.email]
    assert AuditRecord.objects.filter(action="auth.password_reset_requested").count() == 1


def test_the_reset_link_sets_a_new_password_and_ends_every_session(
    person: Person, signed_in: Client, eager_tasks: None
) -> None:
    _reset(person.user.email)
    [link] = re.findall(r"https?://\S+/password/reset/\S+/", mail.outbox[0].body)
    path = link.split("://", 1)[1]
    path = path[path.index("/") :]
    browser = Client()
    form_page = browser.get(path, follow=True)
    assert form_page.context["validlink"]
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = browser.post(
            form_page.redirect_chain[-1][0],
            {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
    assert response["Location"] == reverse("accounts:password-reset-complete")
    person.user.refresh_from_db()
    assert person.user.check_password(NEW_PASSWORD)
    assert _is_signed_out(signed_in)
    assert AuditRecord.objects.filter(action="auth.password_reset_completed").count() == 1
    # The link works once.
    assert not browser.get(path, follow=True).context["validlink"]


def test_resets_are_limited_per_address_known_or_not(person: Person, settings: Any) -> None:
    settings.PASSWORD_RESET_LIMIT_PER_ADDRESS = 2
    for address in (person.user.email, "nobody@example.test"):
        for n in range(2):
            assert _reset(address, ip=f"198.51.100.{n}")[0].status_code == 302
        refused, tasks = _reset(address, ip="198.51.100.9")
        assert refused.status_code == 429
        assert refused.context["form"].non_field_errors() == [views.RESET_LIMITED]
        assert tasks == 0


def test_resets_are_limited_per_client_address(db: Any, settings: Any) -> None:
    settings.PASSWORD_RESET_LIMIT_PER_IP = 3
    for n in range(3):
        assert _reset(f"someone{n}@example.test", ip="192.0.2.1")[0].status_code == 302
    assert _reset("someone9@example.test", ip="192.0.2.1")[0].status_code == 429
    assert _reset("someone9@example.test", ip="192.0.2.2")[0].status_code == 302


def test_behind_a_configured_proxy_each_client_has_its_own_reset_limit(
    db: Any, settings: Any
) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    settings.PASSWORD_RESET_LIMIT_PER_IP = 2
    proxy = "10.0.0.1"
    for client in ("198.51.100.1", "198.51.100.2"):
        for n in range(2):
            response, _ = _reset(f"someone{n}@example.test", proxy, X_Forwarded_For=client)
            assert response.status_code == 302
    # Each client used its own allowance, not the proxy's shared one.
    refused, _ = _reset("someone9@example.test", proxy, X_Forwarded_For="198.51.100.1")
    assert refused.status_code == 429


def test_every_spelling_of_an_address_shares_its_reset_limit(db: Any, settings: Any) -> None:
    settings.PASSWORD_RESET_LIMIT_PER_ADDRESS = 2
    assert _reset("Ops@B\u00fccher.example", ip="198.51.100.1")[0].status_code == 302
    assert _reset("ops@xn--bcher-kva.example", ip="198.51.100.2")[0].status_code == 302
    assert _reset("ops@bu\u0308cher.example", ip="198.51.100.3")[0].status_code == 429


def test_without_redis_a_reset_is_answered_not_a_500(person: Person, settings: Any) -> None:
    # Nothing listens on port 1: the limits fail open, like every other per-source limit.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
        }
    }
    response, tasks = _reset(person.user.email)
    assert (response.status_code, response["Location"]) == (302, RESET_SENT)
    assert tasks == 1


def test_the_sign_in_page_links_to_the_reset(client: Client) -> None:
    assert f'href="{RESET}"' in client.get(LOGIN).content.decode()


# Signing out the other sessions.


def test_signing_out_the_other_sessions_keeps_this_one(
    signed_in: Client, person: Person, eager_tasks: None, django_capture_on_commit_callbacks: Any
) -> None:
    laptop, phone = _signed_in_elsewhere(person), _signed_in_elsewhere(person)
    stranger = verified_client(UserFactory())
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(OTHERS)
    assert response["Location"] == PROFILE
    assert _is_signed_out(laptop)
    assert _is_signed_out(phone)
    assert signed_in.get(PROFILE).status_code == 200
    assert stranger.get(PROFILE).status_code == 200  # nobody else's sessions
    record = AuditRecord.objects.get(action="auth.other_sessions_signed_out")
    assert record.detail == {"sessions": 2}
    assert len(mail.outbox) == 1


def test_signing_out_the_other_sessions_needs_a_post(signed_in: Client) -> None:
    assert signed_in.get(OTHERS).status_code == 405


# Pages with secrets, and error reports.


def test_pages_that_show_secrets_are_never_cached(signed_in: Client, db: Any) -> None:
    newcomer = Client()
    newcomer.force_login(UserFactory())
    setup = newcomer.get(reverse("accounts:two-factor-setup"))
    assert "manual_key" in setup.context
    codes = signed_in.post(reverse("accounts:recovery-codes"))
    assert codes.context["codes"]
    for response in (setup, codes, signed_in.get(reverse("accounts:recovery-codes"))):
        assert "no-store" in response["Cache-Control"]


def test_api_key_pages_are_never_cached(trader: Any, client_for: Any) -> None:
    client = client_for(trader)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()
    for name in ("vault:credential-list", "vault:credential-create"):
        response = client.get(reverse(name, kwargs={"org": trader.org.slug}))
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]


def _hides_its_variables(view: Any) -> bool:
    """True if a sensitive_variables() wrapper is among the view's decorators: Django's error
    reporter then hides the chosen locals of every frame below it."""
    while view is not None:
        if view.__code__.co_name == "sensitive_variables_wrapper":
            return True
        view = getattr(view, "__wrapped__", None)
    return False


@pytest.mark.parametrize(
    "view",
    [
        views.login,
        views.two_factor_verify,
        views.two_factor_setup,
        views.recovery_codes,
        views.step_up,
        views.password_change,
        views.password_reset_confirm,
        vault_views.credential_create_view,
        org_views.invitation_accept,
    ],
    ids=[
        "login",
        "two-factor-verify",
        "two-factor-setup",
        "recovery-codes",
        "step-up",
        "password-change",
        "password-reset-confirm",
        "vault-credential-create",
        "invitation-accept",
    ],
)
def test_views_that_receive_secrets_hide_their_variables_from_error_reports(view: Any) -> None:
    assert _hides_its_variables(view)


def test_new_passwords_are_hidden_from_error_reports(signed_in: Client) -> None:
    response = signed_in.post(
        CHANGE, {"old_password": "x", "new_password1": "y", "new_password2": "y"}
    )
    reported = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert {reported[name] for name in ("old_password", "new_password1", "new_password2")} == {
        SafeExceptionReporterFilter.cleansed_substitute
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("socket_db_connections")
async def test_signing_out_the_other_sessions_closes_their_sockets(trader: Any) -> None:
    from channels.db import database_sync_to_async

    from apps.core.realtime import CLOSE_SIGNED_OUT
    from tests.sockets import close_code, open_probe

    here, there = (
        await database_sync_to_async(verified_client)(trader.user),
        await database_sync_to_async(verified_client)(trader.user),
    )
    here_socket, there_socket = await open_probe(trader, here), await open_probe(trader, there)

    response = await database_sync_to_async(here.post)(OTHERS)
    assert response.status_code == 302

    assert await close_code(there_socket) == CLOSE_SIGNED_OUT
    assert await here_socket.receive_nothing(timeout=0.3)
    await here_socket.disconnect()


def test_the_profile_offers_the_password_change_and_the_sign_out_of_other_sessions(
    signed_in: Client,
) -> None:
    page = signed_in.get(PROFILE).content.decode()
    title = page[page.index("<title>") : page.index("</title>")]
    assert "<" not in title[len("<title>") :]
    assert f'href="{CHANGE}"' in page
    assert f'action="{OTHERS}"' in page
