"""A demoted or removed member's keys follow their new role, in the change's own transaction,
and the decrypt path checks the key's state and its owner's role on every open."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services.memberships import membership_change_role, membership_remove
from apps.vault.models import Credential, Use
from apps.vault.services import (
    CANCEL_ONLY_ON_ROLE_CHANGE,
    KEY_CANCEL_ONLY,
    KEY_OWNER_REMOVED,
    KEY_ROLE_LOST,
    KEY_WRONG_USE,
    REVOKED_ON_ROLE_CHANGE,
    CredentialUnavailable,
    KeyPurpose,
    KeyUseRefused,
    credential_key_for_task,
)
from apps.vault.tasks import KEYS_RESTRICTED_SUBJECT, keys_restricted_email_task

pytestmark = pytest.mark.django_db


def _open(credential: Credential, purpose: KeyPurpose, **kwargs: int) -> str:
    return credential_key_for_task(credential_id=credential.pk, purpose=purpose, **kwargs).secret


def test_a_demoted_traders_trading_key_becomes_cancel_only(owner, trader, store_key) -> None:
    trading, pair = store_key(trader, use=Use.TRADING)
    reading, _ = store_key(trader, use=Use.READ_ONLY)

    membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)

    trading.refresh_from_db()
    reading.refresh_from_db()
    assert trading.status == Credential.Status.CANCEL_ONLY
    assert trading.status_reason == CANCEL_ONLY_ON_ROLE_CHANGE.format(
        org=owner.org.name, old="trader", new="viewer", use="trading use"
    )
    # A viewer may still hold a read-only key: it is left alone.
    assert reading.status == Credential.Status.ACTIVE
    record = AuditRecord.objects.get(action="vault.credential.cancel_only")
    assert record.target_id == str(trading.pk)
    assert record.actor_email == owner.user.email
    assert record.detail["reason"] == trading.status_reason
    # The secret is kept: the key must still be able to cancel the member's open orders.
    assert _open(trading, KeyPurpose.CANCEL) == pair.secret


def test_decrypting_a_cancel_only_key_for_trading_raises(owner, trader, store_key) -> None:
    trading, _ = store_key(trader, use=Use.TRADING)
    membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)

    with pytest.raises(KeyUseRefused) as refused:
        _open(trading, KeyPurpose.TRADE)
    assert str(refused.value) == KEY_CANCEL_ONLY.format(use="trading use")
    for purpose in (KeyPurpose.READ, KeyPurpose.PROBE):
        with pytest.raises(KeyUseRefused):
            _open(trading, purpose)


def test_a_cancel_only_key_opens_to_cancel_and_for_the_kill_switch(
    owner, trader, store_key
) -> None:
    trading, pair = store_key(trader, use=Use.TRADING)
    membership_change_role(membership=trader, role=Role.APPROVER, actor=owner)

    assert _open(trading, KeyPurpose.CANCEL) == pair.secret
    assert _open(trading, KeyPurpose.KILL_SWITCH) == pair.secret
    trading.refresh_from_db()
    assert trading.last_used_at is not None


def test_a_stale_task_cannot_trade_once_the_owners_role_no_longer_allows_it(
    trader, store_checked_key
) -> None:
    # A task queued while the member could trade runs after their role lost it. The key row
    # was not touched (say the receiver never ran): the decrypt path still reads the role.
    trading, pair = store_checked_key(trader, use=Use.TRADING)
    assert _open(trading, KeyPurpose.TRADE) == pair.secret
    Membership.objects.filter(pk=trader.pk).update(role=Role.VIEWER)

    with pytest.raises(KeyUseRefused) as refused:
        _open(trading, KeyPurpose.TRADE)
    assert str(refused.value) == KEY_ROLE_LOST.format(role="viewer", use="trading use")


def test_a_removed_members_keys_cannot_trade_read_or_probe(admin, trader, store_key) -> None:
    trading, pair = store_key(trader, use=Use.TRADING)
    membership_remove(membership=trader, actor=admin)

    for purpose in (KeyPurpose.TRADE, KeyPurpose.READ, KeyPurpose.PROBE):
        with pytest.raises(KeyUseRefused):
            _open(trading, purpose)
    assert _open(trading, KeyPurpose.CANCEL) == pair.secret


def test_an_active_key_of_a_removed_owner_is_refused(admin, trader, store_key) -> None:
    trading, _ = store_key(trader, use=Use.TRADING)
    # Marked removed without the service (as a stale read would see it): the key is refused.
    Membership.objects.filter(pk=trader.pk).update(status=Membership.Status.REMOVED)

    with pytest.raises(KeyUseRefused, match=KEY_OWNER_REMOVED):
        _open(trading, KeyPurpose.TRADE)


def test_a_key_opens_only_for_the_purposes_of_its_use(treasurer, store_checked_key) -> None:
    funding, pair = store_checked_key(treasurer, use=Use.FUNDING)

    assert _open(funding, KeyPurpose.FUND) == pair.secret
    assert _open(funding, KeyPurpose.READ) == pair.secret
    with pytest.raises(KeyUseRefused) as refused:
        _open(funding, KeyPurpose.TRADE)
    assert str(refused.value) == KEY_WRONG_USE.format(use="funding", purpose="trade")
    with pytest.raises(KeyUseRefused):
        _open(funding, KeyPurpose.CANCEL)


def test_a_task_acting_for_a_member_who_lost_the_capability_is_refused(
    owner, trader, store_checked_key
) -> None:
    desk, pair = store_checked_key(owner, use=Use.TRADING, designated=True)
    assert _open(desk, KeyPurpose.TRADE, for_member_id=trader.pk) == pair.secret
    Membership.objects.filter(pk=trader.pk).update(role=Role.VIEWER)

    with pytest.raises(KeyUseRefused):
        _open(desk, KeyPurpose.TRADE, for_member_id=trader.pk)


def test_a_demoted_treasurers_funding_key_is_revoked_with_the_reason(
    owner, treasurer, store_key
) -> None:
    funding, _ = store_key(treasurer, use=Use.FUNDING)

    membership_change_role(membership=treasurer, role=Role.TRADER, actor=owner)

    funding.refresh_from_db()
    assert funding.status == Credential.Status.REVOKED
    assert not funding.secret_ciphertext
    assert funding.status_reason == REVOKED_ON_ROLE_CHANGE.format(
        org=owner.org.name, old="treasurer", new="trader", use="funding use"
    )
    with pytest.raises(CredentialUnavailable):
        _open(funding, KeyPurpose.FUND)


def test_a_role_change_that_keeps_the_use_leaves_the_keys_alone(owner, trader, store_key) -> None:
    trading, _ = store_key(trader, use=Use.TRADING)

    membership_change_role(membership=trader, role=Role.OWNER, actor=owner)

    trading.refresh_from_db()
    assert trading.status == Credential.Status.ACTIVE
    assert not AuditRecord.objects.filter(action__startswith="vault.credential.").exclude(
        action="vault.credential.create"
    )


def test_a_refused_demotion_leaves_the_keys_as_they_were(owner, store_key) -> None:
    trading, _ = store_key(owner, use=Use.TRADING)

    with pytest.raises(Exception, match="last owner"):
        membership_change_role(membership=owner, role=Role.VIEWER, actor=owner)

    trading.refresh_from_db()
    assert trading.status == Credential.Status.ACTIVE


def test_the_member_is_emailed_why_after_commit(
    owner, trader, store_key, django_capture_on_commit_callbacks
) -> None:
    store_key(trader, use=Use.TRADING, label="Desk BTC")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)

    # Enqueued after commit, with the membership id and the reasons (no secret).
    [enqueue] = [cb for cb in callbacks if cb.func == keys_restricted_email_task.delay]
    assert mail.outbox == []
    keys_restricted_email_task(*enqueue.args)  # the task body, as the worker runs it
    [message] = mail.outbox
    assert message.to == [trader.user.email]
    assert message.subject == KEYS_RESTRICTED_SUBJECT.format(org=owner.org.name)
    assert "“Desk BTC”" in message.body
    assert "can now only cancel your open orders" in message.body


def test_the_keys_page_tells_a_demoted_member_why(owner, trader, store_key, client_for) -> None:
    trading, _ = store_key(trader, use=Use.TRADING)
    membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)
    trading.refresh_from_db()

    client: Client = client_for(trader)
    response = client.get(reverse("vault:credential-list", kwargs={"org": owner.org.slug}))

    assert response.status_code == 200
    text = response.content.decode()
    assert "cancel only" in text
    assert trading.status_reason in text
