"""Second factors under concurrency, with real threads against PostgreSQL: a code is used once,
and wrong codes are counted per user, whatever the session or the device."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.accounts.models import RecoveryCode, SecondFactorThrottle, User
from apps.accounts.services import CODE_WRONG, two_factor_check
from apps.audit.models import AuditRecord
from tests.accounts.conftest import RECOVERY_CODES, Person
from tests.factories import PASSWORD

LOGIN = reverse("accounts:login")
VERIFY = reverse("accounts:two-factor-verify")
THREADS = 4


def _race(user: User, codes: list[str]) -> list[str]:
    """Check each code in its own thread, all released at once; each outcome is "ok" or the
    refusal's message."""
    barrier = threading.Barrier(len(codes))
    outcomes: list[str] = [""] * len(codes)

    def attempt(index: int, code: str) -> None:
        try:
            barrier.wait(timeout=10)
            two_factor_check(user=user, code=code)
            outcomes[index] = "ok"
        except ValidationError as error:
            outcomes[index] = error.messages[0]
        finally:
            connection.close()

    threads = [
        threading.Thread(target=attempt, args=(index, code)) for index, code in enumerate(codes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_one_recovery_code_sent_by_parallel_requests_signs_in_once(person: Person) -> None:
    outcomes = _race(person.user, [RECOVERY_CODES[0]] * THREADS)
    assert outcomes.count("ok") == 1
    assert RecoveryCode.objects.filter(used_at__isnull=False).count() == 1
    assert AuditRecord.objects.filter(action="auth.recovery_code_used").count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_authenticator_code_sent_by_parallel_requests_is_accepted_once(
    person: Person,
) -> None:
    outcomes = _race(person.user, [person.code()] * THREADS)
    assert outcomes.count("ok") == 1


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_guesses_are_counted_one_by_one(person: Person) -> None:
    """Each guess reads the counter under the lock: once one has failed, the rest must wait,
    so a burst of parallel guesses gets one look, not one each."""
    outcomes = _race(person.user, [person.wrong_code()] * THREADS)
    assert outcomes.count(CODE_WRONG) == 1
    assert all(o.startswith("Too many wrong codes") for o in outcomes if o != CODE_WRONG)
    assert SecondFactorThrottle.objects.get(user=person.user).failures == 1


def _sign_in_with_password(person: Person) -> Client:
    client = Client()
    response = client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    assert response["Location"].startswith(VERIFY)
    return client


def _code_error(client: Client, code: str) -> str:
    response = client.post(VERIFY, {"code": code})
    assert response.status_code == 200, "the code was accepted"
    return str(response.context["form"].errors["code"][0])


def test_a_new_session_does_not_reset_the_wrong_code_count(db: Any, person: Person) -> None:
    first = _sign_in_with_password(person)
    assert _code_error(first, person.wrong_code()) == CODE_WRONG

    second = _sign_in_with_password(person)
    assert _code_error(second, person.code()).startswith("Too many wrong codes. Try again in")


def test_wrong_authenticator_codes_also_hold_back_recovery_codes(db: Any, person: Person) -> None:
    """One counter per person: alternating between the authenticator and the recovery codes
    does not double the guesses."""
    client = _sign_in_with_password(person)
    assert _code_error(client, person.wrong_code()) == CODE_WRONG
    assert _code_error(client, RECOVERY_CODES[0]).startswith("Too many wrong codes")
    assert not RecoveryCode.objects.filter(used_at__isnull=False).exists()


def test_a_check_locks_the_device_row_and_then_the_users_counter(db: Any, person: Person) -> None:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        two_factor_check(user=person.user, code=person.code())
    locking = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert len(locking) == 2
    assert '"accounts_encryptedtotpdevice"' in locking[0]
    assert '"accounts_secondfactorthrottle"' in locking[1]


def test_django_otps_own_form_sees_the_users_throttle(db: Any, person: Person) -> None:
    """django-otp's OTP forms (the admin's sign-in) ask the device, and get the same answer."""
    from django_otp.forms import OTPTokenForm

    with pytest.raises(ValidationError):
        two_factor_check(user=person.user, code=person.wrong_code())
    form = OTPTokenForm(
        person.user,
        data={"otp_device": person.recovery.persistent_id, "otp_token": RECOVERY_CODES[0]},
    )
    assert not form.is_valid()
    assert "failed attempt" in str(form.errors)
    assert not RecoveryCode.objects.filter(used_at__isnull=False).exists()

    person.throttle_reset()
    form = OTPTokenForm(
        person.user,
        data={"otp_device": person.recovery.persistent_id, "otp_token": RECOVERY_CODES[0]},
    )
    assert form.is_valid(), form.errors
    assert RecoveryCode.objects.filter(used_at__isnull=False).count() == 1
