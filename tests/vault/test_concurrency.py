"""A key stored at the very moment its owner is demoted is not left active for the old role:
the store and the demotion lock the same membership row, so one sees the other."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services import memberships
from apps.vault.models import Credential, Use
from apps.vault.services import credential_create
from tests.factories import master_account
from tests.vault.conftest import new_key_pair

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def test_a_key_stored_during_a_demotion_becomes_cancel_only(
    owner: Membership, trader: Membership
) -> None:
    pair = new_key_pair()
    account = master_account(trader.org)
    errors: list[BaseException] = []

    def demote() -> None:
        try:
            memberships.membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    with transaction.atomic():
        # The key is written, not yet committed, when the demotion starts.
        credential = credential_create(
            membership=trader,
            label="Racing key",
            api_key=pair.api_key,
            secret=pair.secret,
            otp=None,
            account=account,
            use=Use.TRADING,
            probe=False,
        )
        thread = threading.Thread(target=demote)
        thread.start()
        # Commit only once the demotion waits for the member's row (bounded: without the lock
        # it never waits, and the test fails below instead of hanging).
        for _ in range(100):
            if _waiting_on_a_lock():
                break
            time.sleep(0.05)
    thread.join(timeout=20)

    assert errors == []
    credential.refresh_from_db()
    assert credential.status == Credential.Status.CANCEL_ONLY


@pytest.mark.parametrize("round_", range(4))
def test_storing_and_demoting_at_once_never_deadlock_nor_leave_a_key_active(
    owner: Membership, round_: int
) -> None:
    from django.core.exceptions import ValidationError

    from tests.factories import MembershipFactory, UserFactory

    trader = MembershipFactory(org=owner.org, role=Role.TRADER, user=UserFactory())
    pair = new_key_pair()
    account = master_account(owner.org)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def store() -> None:
        try:
            barrier.wait(timeout=5)
            credential_create(
                membership=trader,
                label="Racing key",
                api_key=pair.api_key,
                secret=pair.secret,
                otp=None,
                account=account,
                use=Use.TRADING,
                probe=False,
            )
            outcomes["store"] = "stored"
        except ValidationError as error:
            outcomes["store"] = error.message_dict["use"][0]
        except BaseException as error:
            outcomes["store"] = error
        finally:
            connection.close()

    def demote() -> None:
        try:
            barrier.wait(timeout=5)
            memberships.membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)
            outcomes["demote"] = "demoted"
        except BaseException as error:
            outcomes["demote"] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=store), threading.Thread(target=demote)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert outcomes["demote"] == "demoted"
    if outcomes["store"] == "stored":
        assert Credential.objects.get(owner_id=trader.pk).status == Credential.Status.CANCEL_ONLY
    else:
        assert "does not allow trading use" in str(outcomes["store"])
        assert not Credential.objects.filter(owner_id=trader.pk).exists()
