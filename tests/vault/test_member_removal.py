"""Removing a member restricts their API keys through the vault, audited, in the same
transaction; the membership row and the keys are kept."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditRecord
from apps.orgs.models import Membership
from apps.orgs.services.memberships import LAST_OWNER_REMOVE, membership_remove
from apps.vault.models import Credential, Use
from apps.vault.services import (
    CANCEL_ONLY_ON_REMOVAL,
    REVOKED_ON_REMOVAL,
    credential_revoke,
)


def test_removing_a_member_keeps_their_keys_trading_cancel_only_and_the_rest_revoked(
    admin, trader, store_key
) -> None:
    old, _ = store_key(trader, use=Use.READ_ONLY, label="Old reader")
    credential_revoke(credential=old, actor=trader)
    trading, _ = store_key(trader, use=Use.TRADING, label="Desk BTC")
    reading, _ = store_key(trader, use=Use.READ_ONLY, label="Reader")

    membership_remove(membership=trader, actor=admin)

    trading.refresh_from_db()
    reading.refresh_from_db()
    # The trading key may still cancel the member's open orders; its secret is kept for that.
    assert trading.status == Credential.Status.CANCEL_ONLY
    assert trading.secret_ciphertext
    assert trading.status_reason == CANCEL_ONLY_ON_REMOVAL.format(org=admin.org.name)
    # A read-only key serves nothing once its owner has gone: revoked, its secret destroyed.
    assert reading.status == Credential.Status.REVOKED
    assert not reading.secret_ciphertext
    assert reading.status_reason == REVOKED_ON_REMOVAL.format(org=admin.org.name)
    by_admin = AuditRecord.objects.filter(actor_email=admin.user.email)
    assert list(
        by_admin.filter(action="vault.credential.revoke").values_list("target_id", flat=True)
    ) == [str(reading.pk)]
    assert list(
        by_admin.filter(action="vault.credential.cancel_only").values_list("target_id", flat=True)
    ) == [str(trading.pk)]
    assert AuditRecord.objects.filter(action="membership.remove").count() == 1
    # The membership row is kept, marked removed; the keys still point at it.
    assert not Membership.objects.filter(pk=trader.pk).exists()
    kept = Membership.all_objects.get(pk=trader.pk)
    assert kept.status == Membership.Status.REMOVED
    assert kept.removed_by == admin.user
    assert kept.removed_at is not None
    assert Credential.objects.filter(owner_id=trader.pk).count() == 3


def test_a_refused_removal_leaves_the_members_keys_active(owner, store_key) -> None:
    credential, _ = store_key(owner, use=Use.TRADING)

    with pytest.raises(ValidationError) as refused:
        membership_remove(membership=owner, actor=owner)

    assert LAST_OWNER_REMOVE in refused.value.messages
    credential.refresh_from_db()
    assert credential.is_active
    assert credential.secret_ciphertext
    assert not AuditRecord.objects.filter(action="vault.credential.revoke").exists()


def test_removing_a_member_leaves_other_members_keys_alone(
    admin, trader, viewer, store_key
) -> None:
    kept, _ = store_key(viewer, use=Use.READ_ONLY)
    store_key(trader, use=Use.TRADING)

    membership_remove(membership=trader, actor=admin)

    kept.refresh_from_db()
    assert kept.is_active
