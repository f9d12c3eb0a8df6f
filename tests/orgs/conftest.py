"""Helpers for the organization tests: emailed invitation links, staff reviewers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from apps.accounts.services import STEP_UP_SESSION_KEY
from apps.orgs.models import Membership
from tests.conftest import verified_client
from tests.factories import UserFactory

LINK = re.compile(r"https?://\S+?(/invitations/([^/\s]+)/)")


def invitation_links() -> list[tuple[str, str]]:
    """(path, token) of every invitation link in the test mailbox, oldest first."""
    found = []
    for message in mail.outbox:
        match = LINK.search(str(message.body))
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def stepped_up(client: Client) -> Client:
    """The session has just confirmed a second-factor code (step-up, "sudo mode")."""
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()
    return client


@pytest.fixture
def client_for() -> Callable[[Membership], Client]:
    """Overrides the shared fixture: signed in, 2FA-verified and freshly stepped up.

    Tests of the step-up itself use `tests.conftest.verified_client` directly.
    """
    return lambda membership: stepped_up(verified_client(membership.user))


@pytest.fixture
def staff_client(db: Any) -> Client:
    return verified_client(UserFactory(email="reviewer@kraken.test", is_staff=True))


@pytest.fixture
def committing(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """`with committing():` runs the on-commit side effects (emails, socket events)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
