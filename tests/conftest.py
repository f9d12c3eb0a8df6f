"""Shared fixtures: named personas in one organization, and clients signed in as them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management.base import CommandError
from django.db import OperationalError, connections
from django.test import Client, TransactionTestCase

from apps.accounts.models import EncryptedTOTPDevice
from apps.accounts.services import totp_device_create
from apps.audit.throttle import KEY_PREFIX as AUDIT_FLOOD_PREFIX
from apps.core.ratelimit import KEY_PREFIX as RATE_LIMIT_PREFIX
from apps.core.ratelimit import redis_client
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

FLUSH_ATTEMPTS = 5

pytest_plugins = [
    "tests.plugins.sandbox",
    "tests.plugins.celery_worker",
    "tests.plugins.browser",
]


@pytest.fixture(autouse=True)
def redis_windows_start_empty() -> None:
    """Rate-limit counters and audit flood windows live in Redis, outside the test's database
    transaction: every test starts with none, so one test's failed sign-ins (all from 127.0.0.1)
    neither throttle the next test nor silence its audit record."""
    client = redis_client()
    for prefix in (RATE_LIMIT_PREFIX, AUDIT_FLOOD_PREFIX):
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="session", autouse=True)
def _flush_outlasts_a_busy_worker() -> Iterator[None]:
    """A test that committed its data is flushed (TRUNCATE of every table) when it ends. A
    worker or portal server task still running then can deadlock with it, and PostgreSQL
    aborts one of the two: if that is the flush, the test's rows would stay for the next
    test (which then finds "acme" taken). The flush is one transaction: it is tried again."""
    original = TransactionTestCase._fixture_teardown

    def fixture_teardown(self: TransactionTestCase) -> None:
        for attempt in range(FLUSH_ATTEMPTS):
            try:
                original(self)
                return
            except CommandError as error:
                cause = error.__cause__
                if not isinstance(cause, OperationalError) or attempt == FLUSH_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    TransactionTestCase._fixture_teardown = fixture_teardown  # type: ignore[method-assign]
    yield
    TransactionTestCase._fixture_teardown = original  # type: ignore[method-assign]


@pytest.fixture
def org(db: Any) -> Organization:
    return OrganizationFactory(name="Acme Capital", slug="acme")


def _member(org: Organization, role: str, email: str) -> Membership:
    return MembershipFactory(org=org, role=role, user=UserFactory(email=email))


@pytest.fixture
def owner(org: Organization) -> Membership:
    return _member(org, Role.OWNER, "owner@acme.test")


@pytest.fixture
def admin(org: Organization) -> Membership:
    return _member(org, Role.ADMIN, "admin@acme.test")


@pytest.fixture
def trader(org: Organization) -> Membership:
    return _member(org, Role.TRADER, "trader@acme.test")


@pytest.fixture
def treasurer(org: Organization) -> Membership:
    return _member(org, Role.TREASURER, "treasurer@acme.test")


@pytest.fixture
def approver(org: Organization) -> Membership:
    return _member(org, Role.APPROVER, "approver@acme.test")


@pytest.fixture
def viewer(org: Organization) -> Membership:
    return _member(org, Role.VIEWER, "viewer@acme.test")


@pytest.fixture
def outsider(db: Any) -> Membership:
    """A member of another organization."""
    other = OrganizationFactory(name="Other Fund", slug="other")
    return _member(other, Role.OWNER, "outsider@other.test")


def verified_client(user: Any) -> Client:
    """A client signed in as `user` with a confirmed TOTP device verified for this session."""
    device = EncryptedTOTPDevice.objects.filter(
        user=user, name="default", confirmed=True
    ).first() or totp_device_create(user=user, name="default", confirmed=True)
    client = Client()
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def client_for() -> Callable[[Membership], Client]:
    """`client_for(trader)`: a 2FA-verified client signed in as that member."""
    return lambda membership: verified_client(membership.user)


@pytest.fixture
def broker_unreachable(settings: Any) -> Iterator[None]:
    """Celery's broker is down: nothing listens on port 1, so enqueuing a task raises."""
    from kraken_portal.celery import app

    def use(url: str) -> None:
        # Celery keeps its connection and producer pools once built; drop them so the next
        # task is sent to `url`.
        app.conf.update(broker_url=url)
        settings.CELERY_BROKER_URL = url
        app._pool = None
        app.amqp._producer_pool = None

    before = app.conf.broker_url
    use("redis://127.0.0.1:1/0")
    yield
    use(before)


@pytest.fixture
async def socket_db_connections() -> AsyncIterator[None]:
    """For tests that run consumers in-process: their database work ran in channels' worker
    thread, whose connection must be closed or the test database cannot be dropped."""
    yield
    await database_sync_to_async(connections.close_all)()
