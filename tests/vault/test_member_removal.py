"""Removing a member revokes their API keys through the vault, audited, in the same transaction."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditRecord
from apps.orgs.models import Membership
from apps.orgs.services.memberships import LAST_OWNER_REMOVE, membership_remove
from apps.vault.models import Credential, Use
from apps.vault.services import credential_revoke


def test_removing_a_member_revokes_each_active_key_with_one_audit_record(
    admin, trader, store_key
) -> None:
    trading, _ = store_key(trader, use=Use.TRADING, label="Desk BTC")
    funding, _ = store_key(trader, use=Use.FUNDING, label="Treasury")
    old, _ = store_key(trader, use=Use.READ_ONLY, label="Old reader")
    credential_revoke(credential=old, actor=trader)

    membership_remove(membership=trader, actor=admin)

    revokes = AuditRecord.objects.filter(
        action="vault.credential.revoke", actor_email=admin.user.email
    )
    assert sorted(revokes.values_list("target_id", flat=True)) == sorted(
        [str(trading.pk), str(funding.pk)]
    )
    assert all(record.org_id == admin.org_id for record in revokes)
    assert AuditRecord.objects.filter(action="membership.remove").count() == 1
    assert not Membership.objects.filter(pk=trader.pk).exists()
    assert not Credential.objects.filter(owner_id=trader.pk).exists()


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
