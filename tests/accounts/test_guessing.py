"""Password guessing: a per-account delay that slows a guesser on many addresses without locking
the owner out, a per-address limit, and client addresses that a client cannot choose."""

from __future__ import annotations

import itertools
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from apps.accounts import views
from apps.accounts.signin_throttle import (
    KNOWN_DEVICE_COOKIE,
    TOO_MANY_FOR_ACCOUNT,
    account_delay,
    account_key,
    sign_in_admit,
)
from apps.audit.models import AuditRecord
from apps.core.ratelimit import redis_client
from tests.accounts.conftest import Person
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
WRONG = "not the password"
NEW_PASSWORD = "a different and long passphrase 7"
_addresses = itertools.count(1)


def _stranger() -> Client:
    """A client on an address of its own, as a guesser spreading attempts would use."""
    n = next(_addresses)
    return Client(REMOTE_ADDR=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}")


def _let_the_delay_pass(email: str) -> None:
    """Move the account's wait into the past instead of sleeping through it (as the axes tests
    move failures back in time)."""
    client = redis_client()
    key = account_key(email)
    for field in ("not_before", "reserved_until"):
        if client.hexists(key, field):
            client.hset(key, field, "0")


def _failures_counted(email: str) -> int:
    return int(redis_client().hget(account_key(email), "failures") or 0)


def _wait_asked(response: Any) -> int | None:
    """The seconds a refusal asks to wait, read back through the message constant."""
    pattern = re.escape(TOO_MANY_FOR_ACCOUNT).replace(re.escape("{seconds}"), r"(\d+)")
    found = re.search(pattern, response.content.decode())
    return int(found.group(1)) if found else None


def _about(seconds: int) -> set[int]:
    """A wait read back a moment after it was set (the page rounds up; a slow machine may have
    spent a second or two in between)."""
    return {seconds, seconds - 1, seconds - 2}


def test_a_strangers_twenty_failures_do_not_stop_the_owner_signing_in_after_the_delay(
    person: Person,
) -> None:
    email = person.user.email
    for attempt in range(20):
        # Any letter case is the same account.
        typed = email.upper() if attempt % 2 else email.title()
        response = _stranger().post(LOGIN, {"email": typed, "password": WRONG})
        assert response.status_code == 200
        assert views.SIGN_IN_INVALID in response.content.decode()
        if attempt < 19:
            _let_the_delay_pass(email)
    assert _failures_counted(email) == 20

    # The guesser's last failure set the longest wait; the owner, elsewhere, waits it out...
    owner = Client(REMOTE_ADDR="192.0.2.10")
    attempts_before = AccessAttempt.objects.count()
    failures_before = AuditRecord.objects.filter(action="auth.sign_in_failed").count()
    response = owner.post(LOGIN, {"email": email, "password": PASSWORD})
    assert response.status_code == 429
    assert _wait_asked(response) in _about(settings.SIGN_IN_DELAY_CAP)
    # ...and that early attempt was answered without looking at the password.
    assert AccessAttempt.objects.count() == attempts_before
    assert AuditRecord.objects.filter(action="auth.sign_in_failed").count() == failures_before

    _let_the_delay_pass(email)
    response = owner.post(LOGIN, {"email": email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:two-factor-verify"))
    # The right password starts the account's count again.
    assert _failures_counted(email) == 0
    assert _stranger().post(LOGIN, {"email": email, "password": WRONG}).status_code == 200


def test_early_attempts_are_refused_without_checking_and_do_not_lengthen_the_wait(
    person: Person,
) -> None:
    email = person.user.email
    for _ in range(settings.SIGN_IN_DELAY_AFTER):
        assert _stranger().post(LOGIN, {"email": email, "password": WRONG}).status_code == 200

    # Hammering during the wait: every attempt refused, even the right password, none counted.
    for password in [WRONG] * 10 + [PASSWORD]:
        response = _stranger().post(LOGIN, {"email": email, "password": password})
        assert response.status_code == 429
        assert _wait_asked(response) in {1, 2}
    assert _failures_counted(email) == settings.SIGN_IN_DELAY_AFTER


def test_the_wait_doubles_after_each_failure_up_to_the_cap(person: Person) -> None:
    email = person.user.email
    free, cap = settings.SIGN_IN_DELAY_AFTER, settings.SIGN_IN_DELAY_CAP
    # The first failures come back to back: no wait at all.
    for _ in range(free):
        assert _stranger().post(LOGIN, {"email": email, "password": WRONG}).status_code == 200
    asked = []
    for _ in range(12):
        asked.append(_wait_asked(_stranger().post(LOGIN, {"email": email, "password": PASSWORD})))
        _let_the_delay_pass(email)
        assert _stranger().post(LOGIN, {"email": email, "password": WRONG}).status_code == 200
    expected = [min(cap, 2**k) for k in range(1, 13)]
    assert expected[-1] == cap
    for wait, seconds in zip(asked, expected, strict=True):
        assert wait in _about(seconds)


@hypothesis_settings(max_examples=200, deadline=None)
@given(failures=st.integers(min_value=0, max_value=10_000))
def test_the_delay_is_zero_then_powers_of_two_never_above_the_cap(failures: int) -> None:
    delay = account_delay(failures)
    free, cap = settings.SIGN_IN_DELAY_AFTER, settings.SIGN_IN_DELAY_CAP
    if failures < free:
        assert delay == 0
    else:
        assert 2 <= delay <= cap
        assert delay == cap or delay == 2 ** (failures - free + 1)
        assert account_delay(failures + 1) in {min(cap, 2 * delay)}


@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(st.lists(st.booleans(), min_size=17, max_size=17), min_size=6, max_size=6))
def test_any_letter_case_counts_against_one_account(person: Person, cases: list[Any]) -> None:
    email = person.user.email  # dana@example.test: 17 characters
    redis_client().delete(account_key(email))
    spellings = [
        "".join(c.upper() if up else c for c, up in zip(email, flips, strict=True))
        for flips in cases
    ]
    for spelling in spellings[:-1]:
        _stranger().post(LOGIN, {"email": spelling, "password": WRONG})
    response = _stranger().post(LOGIN, {"email": spellings[-1], "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many attempts for this account" in response.content.decode()


def test_an_address_with_too_many_failures_is_refused_for_every_account(
    person: Person,
) -> None:
    flood = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(settings.SIGN_IN_ADDRESS_LIMIT):
        email = f"nobody{n}@example.test"
        assert flood.post(LOGIN, {"email": email, "password": WRONG}).status_code == 200
    response = flood.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-ins from your network; try again in 15 minutes." in (
        response.content.decode()
    )
    # Others are not affected.
    response = Client(REMOTE_ADDR="192.0.2.10").post(
        LOGIN, {"email": person.user.email, "password": PASSWORD}
    )
    assert response.status_code == 302


def _fail_behind_proxy(email: str, forwarded: list[str]) -> list[int]:
    client = Client(REMOTE_ADDR="10.0.0.1")  # the proxy
    return [
        client.post(
            LOGIN, {"email": email, "password": WRONG}, headers={"X-Forwarded-For": chain}
        ).status_code
        for chain in forwarded
    ]


def test_x_forwarded_for_is_ignored_by_default(person: Person) -> None:
    """A client that writes its own X-Forwarded-For does not get a new address per attempt."""
    chains = [f"198.51.100.{n}" for n in range(settings.AXES_FAILURE_LIMIT)]
    statuses = _fail_behind_proxy(person.user.email, chains)
    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    ips = set(AuditRecord.objects.filter(action="auth.sign_in_failed").values_list("ip", flat=True))
    assert ips == {"10.0.0.1"}


def test_x_forwarded_for_is_honoured_behind_a_configured_proxy(
    person: Person, settings: Any
) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    # The proxy appends the address it saw; what a client wrote to the left is not believed.
    chains = [f"6.6.6.6, 198.51.100.{n}" for n in range(settings.AXES_FAILURE_LIMIT)]
    statuses = _fail_behind_proxy(person.user.email, chains)
    # Five addresses, one failure each: no lockout of any of them.
    assert statuses == [200] * settings.AXES_FAILURE_LIMIT
    ips = set(AuditRecord.objects.filter(action="auth.sign_in_failed").values_list("ip", flat=True))
    assert ips == {f"198.51.100.{n}" for n in range(settings.AXES_FAILURE_LIMIT)}
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == ips


def _push_to_the_cap(email: str) -> None:
    for _ in range(20):
        _let_the_delay_pass(email)
        assert _stranger().post(LOGIN, {"email": email, "password": WRONG}).status_code == 200


def test_the_owners_usual_browser_is_not_kept_waiting_by_a_stranger(person: Person) -> None:
    """A scripted stranger could take every slot the moment it opens; the browser that gave the
    right password before does not queue behind them."""
    email = person.user.email
    owner = Client(REMOTE_ADDR="192.0.2.10")
    assert owner.post(LOGIN, {"email": email, "password": PASSWORD}).status_code == 302
    assert KNOWN_DEVICE_COOKIE in owner.cookies

    _push_to_the_cap(email)
    elsewhere = Client(REMOTE_ADDR="192.0.2.11")
    assert elsewhere.post(LOGIN, {"email": email, "password": PASSWORD}).status_code == 429
    response = owner.post(LOGIN, {"email": email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:two-factor-verify"))


def test_a_known_device_cookie_helps_only_its_own_account(person: Person) -> None:
    owner = Client(REMOTE_ADDR="192.0.2.10")
    assert owner.post(LOGIN, {"email": person.user.email, "password": PASSWORD}).status_code == 302
    cookie = owner.cookies[KNOWN_DEVICE_COOKIE].value

    other = "someone-else@example.test"
    _push_to_the_cap(other)
    for value in [cookie, cookie[:-2] + "xx", "garbage"]:
        stranger = _stranger()
        stranger.cookies[KNOWN_DEVICE_COOKIE] = value
        response = stranger.post(LOGIN, {"email": other, "password": WRONG})
        assert response.status_code == 429, value


def test_a_known_device_cookie_ends_with_the_password_it_was_given_for(person: Person) -> None:
    """A browser that knew the old password (perhaps the reason it was changed) queues like a
    stranger once the password changes."""
    email = person.user.email
    old_browser = Client(REMOTE_ADDR="192.0.2.10")
    assert old_browser.post(LOGIN, {"email": email, "password": PASSWORD}).status_code == 302
    person.user.set_password(NEW_PASSWORD)
    person.user.save(update_fields=["password"])

    _push_to_the_cap(email)
    response = old_browser.post(LOGIN, {"email": email, "password": NEW_PASSWORD})
    assert response.status_code == 429
    assert _wait_asked(response) is not None


def test_parallel_attempts_in_one_slot_get_one_password_check(person: Person) -> None:
    email = person.user.email
    for _ in range(settings.SIGN_IN_DELAY_AFTER):
        _stranger().post(LOGIN, {"email": email, "password": WRONG})
    _let_the_delay_pass(email)
    start = threading.Barrier(8)

    def attempt(_: int) -> str | None:
        start.wait()
        return sign_in_admit(email=email, ip=None)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert answers.count(None) == 1
    assert all("Too many attempts for this account" in a for a in answers if a is not None)
