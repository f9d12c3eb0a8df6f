"""A Redis that hangs does not hang sign-in: the limits' client gives up after its timeouts and
the limits fail open (django-axes' lockout, kept in the database, still holds)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit import throttle
from apps.audit.models import AuditRecord
from apps.core import ratelimit
from apps.core.redis_clients import REDIS_TIMEOUT
from tests.accounts.conftest import Person
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")


@pytest.fixture
def hung_redis(settings: Any) -> Iterator[None]:
    """A port that takes connections (the kernel completes the handshake into the listen
    backlog) and never answers: what a client sees of a Redis that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        settings.REDIS_URL = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        yield
    # Closing the listener resets the connections it never accepted.


def test_the_limits_and_the_audit_gate_share_one_client_with_short_timeouts() -> None:
    """redis-py's own default waits 5 s per command and retries it three times, so each of the
    sign-in's Redis commands could keep it waiting for many seconds; the kernel's client gives
    up after REDIS_TIMEOUT, once retried."""
    client = ratelimit.redis_client()
    assert throttle.redis_client() is client
    options = client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == options["socket_connect_timeout"] == REDIS_TIMEOUT
    assert client.get_retry() is not None
    assert client.get_retry().get_retries() == 1


# Without timeouts a command would wait for ever; pytest-timeout ends the test (as a failure)
# long before that.
@pytest.mark.timeout(60)
@pytest.mark.usefixtures("hung_redis")
def test_a_hung_redis_does_not_hang_sign_in(person: Person) -> None:
    response = Client().post(LOGIN, {"email": person.user.email, "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:two-factor-verify"))


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("hung_redis")
def test_a_hung_redis_does_not_hang_a_failed_sign_in_or_lose_its_audit_record(
    person: Person,
) -> None:
    response = Client().post(LOGIN, {"email": person.user.email, "password": "not it"})

    assert response.status_code == 200
    assert AuditRecord.objects.filter(action="auth.sign_in_failed").count() == 1
