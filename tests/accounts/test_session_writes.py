"""A signed-in click reads the session but does not write it: the last-seen time that the idle
sign-out needs is refreshed at most every LAST_SEEN_RESOLUTION seconds, not on every request
(a database write per click, and per htmx poll, for every signed-in user)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.middleware import LAST_SEEN_KEY, LAST_SEEN_RESOLUTION
from apps.orgs.models import Membership

pytestmark = pytest.mark.django_db

_WRITES = ("INSERT", "UPDATE", "DELETE")


def _writes(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().startswith(_WRITES)]


def test_a_page_viewed_again_within_the_resolution_writes_nothing(
    client_for: Callable[[Membership], Client], trader: Membership
) -> None:
    client = client_for(trader)
    url = f"/o/{trader.org.slug}/vault/"
    client.get(url)  # the first request of a session records when it was last seen
    for _ in range(3):
        assert _writes(client, url) == []


def test_the_last_seen_time_is_written_once_the_resolution_has_passed(
    client_for: Callable[[Membership], Client], trader: Membership
) -> None:
    client = client_for(trader)
    url = f"/o/{trader.org.slug}/vault/"
    client.get(url)
    session = client.session
    session[LAST_SEEN_KEY] = time.time() - LAST_SEEN_RESOLUTION - 1
    session.save()
    writes = _writes(client, url)
    assert len(writes) == 1
    assert "django_session" in writes[0]
    assert client.session[LAST_SEEN_KEY] > time.time() - LAST_SEEN_RESOLUTION
