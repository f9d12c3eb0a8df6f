from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.audit.models import AuditRecord
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.vault import crypto
from apps.vault.models import Credential, Use
from apps.vault.selectors import NoCredential, credential_for
from apps.vault.services import (
    DUPLICATE_API_KEY,
    CredentialUnavailable,
    KeyPurpose,
    credential_create,
    credential_designate,
    credential_key_for_task,
    credential_revoke,
)
from apps.vault.validators import PRIVATE_KEY_FORMAT
from tests.factories import MembershipFactory, master_account
from tests.vault.conftest import new_key_pair

pytestmark = pytest.mark.django_db


def test_a_stored_key_opens_inside_a_task_with_its_password_and_marks_it_used(
    trader, store_key
) -> None:
    credential, pair = store_key(trader, otp="key-2fa-pw")
    assert credential.last_used_at is None
    key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.READ)
    assert (key.api_key, key.secret, key.otp) == (pair.api_key, pair.secret, "key-2fa-pw")
    assert key.key_id == f"cred:{credential.pk}"
    assert pair.secret not in repr(key)
    credential.refresh_from_db()
    assert credential.last_used_at is not None


def test_the_row_holds_no_plaintext_only_sealed_bytes(trader, store_key) -> None:
    credential, pair = store_key(trader, otp="key-2fa-pw")
    credential.refresh_from_db()
    assert credential.kek_id == "k1"
    stored = b"".join(
        bytes(v)
        for v in (credential.wrapped_key, credential.secret_ciphertext, credential.otp_ciphertext)
    )
    for form in pair.secret_forms():
        assert form.encode() not in stored


def test_a_ciphertext_copied_to_another_row_does_not_decrypt(trader, treasurer, store_key) -> None:
    mine, _ = store_key(trader)
    theirs, _ = store_key(treasurer, use=Use.FUNDING)
    for other in (theirs, store_key(trader, use=Use.READ_ONLY)[0]):
        Credential.objects.filter(pk=other.pk).update(
            kek_id=mine.kek_id,
            wrapped_key=bytes(mine.wrapped_key),
            secret_ciphertext=bytes(mine.secret_ciphertext),
        )
        with pytest.raises(crypto.VaultKeyError, match="could not be decrypted"):
            credential_key_for_task(credential_id=other.pk, purpose=KeyPurpose.READ)


def test_without_a_keyring_a_key_is_refused_and_nothing_is_stored(trader, settings) -> None:
    settings.PORTAL_KEYRING = ""
    pair = new_key_pair()
    with pytest.raises(crypto.VaultUnavailable):
        credential_create(
            membership=trader,
            label="x",
            api_key=pair.api_key,
            secret=pair.secret,
            otp=None,
            account=master_account(trader.org),
            use=Use.TRADING,
        )
    assert not Credential.objects.exists()
    assert not AuditRecord.objects.filter(action__startswith="vault.").exists()


def test_with_a_wrong_keyring_a_stored_key_cannot_be_used(trader, store_key, settings) -> None:
    credential, _ = store_key(trader)
    settings.PORTAL_KEYRING = f"k1:{crypto.generate_kek()}"
    with pytest.raises(crypto.VaultKeyError):
        credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.READ)
    settings.PORTAL_KEYRING = ""
    with pytest.raises(crypto.VaultUnavailable):
        credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.READ)


def test_the_service_validates_the_key_formats_without_a_form(trader) -> None:
    pair = new_key_pair()
    with pytest.raises(ValidationError) as raised:
        credential_create(
            membership=trader,
            label="x",
            api_key=pair.api_key,
            secret="c2hvcnQ=",
            otp=None,
            account=master_account(trader.org),
            use=Use.TRADING,
        )
    assert raised.value.message_dict == {"secret": [PRIVATE_KEY_FORMAT]}
    assert not Credential.objects.exists()


def test_the_same_api_key_cannot_be_stored_twice_in_an_organization(trader, treasurer, store_key):
    _, pair = store_key(trader)
    with pytest.raises(ValidationError) as raised:
        store_key(treasurer, use=Use.FUNDING, pair=pair)
    assert raised.value.message_dict == {"api_key": [DUPLICATE_API_KEY]}


def test_a_member_has_one_active_key_per_use_until_it_is_revoked(trader, store_key) -> None:
    first, _ = store_key(trader)
    with pytest.raises(ValidationError, match="already have an active trading key"):
        store_key(trader)
    credential_revoke(credential=first, actor=trader)
    second, _ = store_key(trader)
    main = master_account(trader.org)
    assert credential_for(membership=trader, account=main, use=Use.TRADING) == second


def test_revoking_destroys_the_sealed_secret_and_stops_use(trader, store_key) -> None:
    credential, _ = store_key(trader)
    credential_revoke(credential=credential, actor=trader)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert bytes(credential.secret_ciphertext) == b""
    assert bytes(credential.wrapped_key) == b""
    with pytest.raises(CredentialUnavailable):
        credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.READ)
    with pytest.raises(ValidationError):
        credential_revoke(credential=credential, actor=trader)


def test_a_task_uses_the_members_own_key_for_the_use(owner, trader, store_key) -> None:
    trading, _ = store_key(trader, use=Use.TRADING)
    reading, _ = store_key(trader, use=Use.READ_ONLY)
    store_key(owner, use=Use.TRADING)
    main = master_account(trader.org)
    assert credential_for(membership=trader, account=main, use=Use.TRADING) == trading
    assert credential_for(membership=trader, account=main, use=Use.READ_ONLY) == reading


def test_a_task_never_falls_back_to_another_members_key(trader, treasurer, store_key) -> None:
    store_key(treasurer, use=Use.FUNDING)
    with pytest.raises(NoCredential, match="no active funding API key"):
        credential_for(membership=trader, account=master_account(trader.org), use=Use.FUNDING)


def test_a_task_falls_back_to_the_accounts_designated_key(owner, trader, store_key) -> None:
    main = master_account(trader.org)
    desk, _ = store_key(owner, use=Use.TRADING, designated=True)
    assert credential_for(membership=trader, account=main, use=Use.TRADING) == desk
    own, _ = store_key(trader, use=Use.TRADING)
    assert credential_for(membership=trader, account=main, use=Use.TRADING) == own


def test_a_designated_key_stops_serving_when_its_holder_is_no_longer_owner_or_admin(
    owner, trader, store_key
) -> None:
    main = master_account(trader.org)
    store_key(owner, use=Use.TRADING, designated=True)
    owner.role = Role.ADMIN
    owner.save()
    assert credential_for(membership=trader, account=main, use=Use.TRADING).designated
    owner.role = Role.TRADER
    owner.save()
    with pytest.raises(NoCredential):
        credential_for(membership=trader, account=main, use=Use.TRADING)


def test_only_owners_and_admins_designate_keys_and_only_their_own_kind(
    admin, trader, store_key
) -> None:
    with pytest.raises(PermissionDenied):
        store_key(trader, designated=True)
    credential, _ = store_key(trader)
    with pytest.raises(PermissionDenied):
        credential_designate(credential=credential, actor=trader, designated=True)
    # An admin may designate, but not a trader's personal key: it would act for the whole
    # organization on the trader's say-so.
    with pytest.raises(ValidationError, match="stored by an owner or an admin"):
        credential_designate(credential=credential, actor=admin, designated=True)
    # Admins hold read-only keys only (apps.vault.policy), and may designate theirs.
    admins, _ = store_key(admin, label="Admin desk", use=Use.READ_ONLY, designated=True)
    assert admins.designated


def test_designating_reads_the_roles_again_not_the_ones_the_request_loaded(
    owner, store_key
) -> None:
    # A demotion or removal committed after the request loaded its objects: they still say
    # "owner". The holder is read again under the organization's lock...
    co_owner = MembershipFactory(org=owner.org, role=Role.OWNER)
    credential, _ = store_key(co_owner)
    Membership.objects.filter(pk=co_owner.pk).update(role=Role.TRADER)
    assert credential.owner.role == Role.OWNER  # the stale holder
    with pytest.raises(ValidationError, match="stored by an owner or an admin"):
        credential_designate(credential=credential, actor=owner, designated=True)
    Membership.objects.filter(pk=co_owner.pk).update(
        role=Role.OWNER, status=Membership.Status.REMOVED
    )
    with pytest.raises(ValidationError, match="stored by an owner or an admin"):
        credential_designate(credential=credential, actor=owner, designated=True)

    # ...and so is the actor.
    mine, _ = store_key(owner, label="Mine")
    Membership.objects.filter(pk=owner.pk).update(role=Role.TRADER)
    assert owner.role == Role.OWNER  # the stale actor
    with pytest.raises(PermissionDenied):
        credential_designate(credential=mine, actor=owner, designated=True)
    assert not Credential.objects.filter(designated=True).exists()


def test_designating_and_withdrawing_a_key_is_audited(owner, store_key) -> None:
    credential, _ = store_key(owner)
    credential_designate(credential=credential, actor=owner, designated=True)
    credential_designate(credential=credential, actor=owner, designated=False)
    actions = list(
        AuditRecord.objects.filter(target_id=str(credential.pk))
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == [
        "vault.credential.create",
        "vault.credential.designate",
        "vault.credential.undesignate",
    ]


def test_every_vault_audit_row_is_free_of_the_secret(owner, store_key) -> None:
    credential, pair = store_key(owner, otp="key-2fa-pw", designated=True)
    credential_revoke(credential=credential, actor=owner)
    records = AuditRecord.objects.filter(action__startswith="vault.")
    assert records.count() == 3
    text = " ".join(str(list(r.__dict__.values())) for r in records)
    for form in pair.secret_forms():
        assert form not in text
    create = records.get(action="vault.credential.create")
    assert create.detail["api_key"] == credential.masked_key
    assert create.detail["has_2fa"] is True
