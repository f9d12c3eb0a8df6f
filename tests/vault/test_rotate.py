from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.orgs.permissions import Role
from apps.orgs.services.memberships import membership_change_role
from apps.vault import crypto
from apps.vault.models import Credential, Use
from apps.vault.services import KeyPurpose, credential_key_for_task, credential_rewrap
from tests.vault.conftest import KEK_1, KEK_2

pytestmark = pytest.mark.django_db


def rotate() -> str:
    out = StringIO()
    call_command("vault_rotate", stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def three_keys(owner, trader, treasurer, store_key):
    return [
        store_key(owner, use=Use.READ_ONLY),
        store_key(trader, use=Use.TRADING, otp="pw-1"),
        store_key(treasurer, use=Use.FUNDING),
    ]


def assert_all_open(keys) -> None:
    for credential, pair in keys:
        key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.READ)
        assert (key.secret, key.otp) == (pair.secret, pair.otp)


def test_rotation_rewraps_every_key_under_the_newest_kek(three_keys, settings) -> None:
    settings.PORTAL_KEYRING = f"k2:{KEK_2},k1:{KEK_1}"
    assert_all_open(three_keys)  # Old KEKs still decrypt before rotation.
    before = {c.pk: bytes(c.secret_ciphertext) for c, _ in three_keys}
    assert "rewrapped: 3, already current: 0, failed: 0" in rotate()
    assert set(Credential.objects.values_list("kek_id", flat=True)) == {"k2"}
    # Only the data keys moved; the secrets' ciphertexts are untouched.
    assert {c.pk: bytes(c.secret_ciphertext) for c in Credential.objects.all()} == before
    settings.PORTAL_KEYRING = f"k2:{KEK_2}"  # The old KEK can now go.
    assert_all_open(three_keys)


def test_running_rotation_again_is_a_no_op(three_keys, settings) -> None:
    settings.PORTAL_KEYRING = f"k2:{KEK_2},k1:{KEK_1}"
    rotate()
    wrapped = dict(Credential.objects.values_list("pk", "wrapped_key"))
    assert "rewrapped: 0, already current: 3, failed: 0" in rotate()
    assert dict(Credential.objects.values_list("pk", "wrapped_key")) == wrapped


def test_an_interrupted_rotation_finishes_on_the_next_run(three_keys, settings) -> None:
    settings.PORTAL_KEYRING = f"k2:{KEK_2},k1:{KEK_1}"
    assert credential_rewrap(credential_id=three_keys[0][0].pk) == ("rewrapped", "")
    assert "rewrapped: 2, already current: 1, failed: 0" in rotate()
    assert_all_open(three_keys)


def test_removing_the_old_kek_before_rotating_fails_loudly_and_changes_nothing(
    three_keys, settings
) -> None:
    settings.PORTAL_KEYRING = f"k2:{KEK_2}"
    err = StringIO()
    with pytest.raises(CommandError, match="3 credential"):
        call_command("vault_rotate", stdout=StringIO(), stderr=err)
    assert "(k1) is not in PORTAL_KEYRING" in err.getvalue()
    assert set(Credential.objects.values_list("kek_id", flat=True)) == {"k1"}
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    assert_all_open(three_keys)


def test_rotation_without_a_keyring_refuses_with_a_clear_error(three_keys, settings) -> None:
    settings.PORTAL_KEYRING = ""
    with pytest.raises(CommandError, match=r"PORTAL_KEYRING is empty"):
        rotate()
    with pytest.raises(crypto.VaultUnavailable):
        credential_rewrap(credential_id=three_keys[0][0].pk)


def test_rotation_rewraps_cancel_only_keys_so_they_still_cancel_without_the_old_kek(
    owner, trader, store_key, settings
) -> None:
    # A demoted trader's key keeps its sealed secret so their open orders can still be
    # cancelled; rotation must carry it to the new KEK like an active key.
    trading, pair = store_key(trader, use=Use.TRADING)
    membership_change_role(membership=trader, role=Role.VIEWER, actor=owner)
    trading.refresh_from_db()
    assert trading.status == Credential.Status.CANCEL_ONLY

    settings.PORTAL_KEYRING = f"k2:{KEK_2},k1:{KEK_1}"
    assert "rewrapped: 1, already current: 0, failed: 0" in rotate()
    settings.PORTAL_KEYRING = f"k2:{KEK_2}"  # The old KEK is dropped.
    for purpose in (KeyPurpose.CANCEL, KeyPurpose.KILL_SWITCH):
        key = credential_key_for_task(credential_id=trading.pk, purpose=purpose)
        assert key.secret == pair.secret
