"""Two approvers deciding at the same moment: one reaches the quorum, the handler runs once."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.approvals.models import ApprovalRequest, Decision
from apps.approvals.services import approval_decide
from apps.orgs.permissions import Role
from tests.approvals.conftest import EXECUTED, transfer
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_simultaneous_approvals_execute_once(owner, approver, treasurer) -> None:
    approval = transfer(treasurer, "10")  # one approval suffices
    deciders = [owner, approver, MembershipFactory(org=owner.org, role=Role.APPROVER)]
    start = threading.Barrier(len(deciders))
    outcomes: list[str] = []

    def decide(member) -> None:
        try:
            start.wait()
            approval_decide(
                approval=approval,
                actor=member,
                verdict="approve",
                fingerprint_seen=approval.fingerprint,
                stepped_up=True,
            )
            outcomes.append("ok")
        except ValidationError as exc:
            outcomes.append(exc.messages[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(m,)) for m in deciders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("ok") == 1
    assert all("no longer waiting" in o for o in outcomes if o != "ok")
    assert Decision.objects.count() == 1
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXECUTED
    assert [approval.pk] == EXECUTED
