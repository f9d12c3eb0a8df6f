"""A test kind registered by the tests, as a business app would register its own: a transfer
to an address, whose value in USD can move before execution (a price)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from apps.accounts.services import STEP_UP_SESSION_KEY
from apps.approvals.models import ApprovalRequest
from apps.approvals.registry import TierSpec, approval_kind_register
from apps.approvals.services import approval_request_create
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from tests.conftest import verified_client

KIND = "tests.transfer"
# The transfers' live state, standing in for a business app's rows: address and current value.
SUBJECTS: dict[str, dict[str, Any]] = {}
EXECUTED: list[int] = []
TIERS = (
    TierSpec(Decimal(0), 1, (Role.OWNER, Role.APPROVER)),
    TierSpec(Decimal(1000), 2, (Role.OWNER, Role.APPROVER)),
    TierSpec(Decimal(10000), 2, (Role.OWNER, Role.APPROVER), owner_required=True),
)


def _subject(approval: ApprovalRequest) -> dict[str, Any]:
    return SUBJECTS[approval.summary["subject"]]


def _handler(approval: ApprovalRequest) -> None:
    if _subject(approval).get("fail"):
        from django.core.exceptions import ValidationError

        raise ValidationError("The exchange refused the transfer.")
    EXECUTED.append(approval.pk)


@pytest.fixture(autouse=True)
def test_kind() -> str:
    approval_kind_register(
        KIND,
        _handler,
        lambda a: f"Send {a.summary['amount']} BTC to {a.summary['address']}",
        label="Test transfer",
        fingerprint=lambda a: hashlib.sha256(_subject(a)["address"].encode()).hexdigest(),
        current_value=lambda a: _subject(a)["value"],
        default_tiers=TIERS,
    )
    SUBJECTS.clear()
    EXECUTED.clear()
    return KIND


def transfer(
    requester: Membership, value: str, *, name: str = "t1", address: str = "bc1-alpha"
) -> ApprovalRequest:
    SUBJECTS[name] = {"address": address, "value": Decimal(value)}
    return approval_request_create(
        org=requester.org,
        kind=KIND,
        requester=requester,
        subject=None,
        summary={"subject": name, "address": address, "amount": "0.1", "rate": "50000"},
        value=Decimal(value),
        currency="USD",
        asset="BTC",
        amount=Decimal("0.1"),
    )


@pytest.fixture
def committing(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    return lambda: django_capture_on_commit_callbacks(execute=True)


def stepped_up_client(membership: Membership) -> Client:
    client = verified_client(membership.user)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()
    return client
