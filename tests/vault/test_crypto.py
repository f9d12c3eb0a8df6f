from __future__ import annotations

import base64
import os

import pytest

from apps.vault import crypto

BINDING = crypto.Binding(credential_id=7, org_id=3, owner_id=11)
SECRET = base64.b64encode(os.urandom(64)).decode()


def test_a_sealed_secret_opens_for_its_own_row() -> None:
    sealed = crypto.seal(binding=BINDING, secret=SECRET, otp="hunter22")
    opened = crypto.open_sealed(binding=BINDING, sealed=sealed)
    assert (opened.secret, opened.otp) == (SECRET, "hunter22")
    assert sealed.kek_id == "k1"


def test_sealing_twice_gives_different_ciphertexts_and_fresh_data_keys() -> None:
    first = crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    second = crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    assert first.secret_ciphertext != second.secret_ciphertext
    assert first.wrapped_key != second.wrapped_key
    assert first.otp_ciphertext is None


@pytest.mark.parametrize(
    "other",
    [
        crypto.Binding(credential_id=8, org_id=3, owner_id=11),
        crypto.Binding(credential_id=7, org_id=4, owner_id=11),
        crypto.Binding(credential_id=7, org_id=3, owner_id=12),
    ],
    ids=["another credential", "another organization", "another owner"],
)
def test_a_ciphertext_does_not_open_for_any_other_row(other: crypto.Binding) -> None:
    sealed = crypto.seal(binding=BINDING, secret=SECRET, otp="pw")
    with pytest.raises(crypto.VaultKeyError, match="could not be decrypted"):
        crypto.open_sealed(binding=other, sealed=sealed)


def test_the_secret_and_key_password_ciphertexts_cannot_be_swapped() -> None:
    sealed = crypto.seal(binding=BINDING, secret=SECRET, otp="pw")
    swapped = crypto.Sealed(
        kek_id=sealed.kek_id,
        wrapped_key=sealed.wrapped_key,
        secret_ciphertext=sealed.otp_ciphertext or b"",
        otp_ciphertext=sealed.secret_ciphertext,
    )
    with pytest.raises(crypto.VaultKeyError):
        crypto.open_sealed(binding=BINDING, sealed=swapped)


def test_a_tampered_ciphertext_is_refused() -> None:
    sealed = crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    flipped = bytearray(sealed.secret_ciphertext)
    flipped[-1] ^= 1
    tampered = crypto.Sealed(sealed.kek_id, sealed.wrapped_key, bytes(flipped), None)
    with pytest.raises(crypto.VaultKeyError):
        crypto.open_sealed(binding=BINDING, sealed=tampered)


def test_without_a_keyring_nothing_is_sealed_or_opened(settings) -> None:
    sealed = crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    settings.PORTAL_KEYRING = ""
    with pytest.raises(crypto.VaultUnavailable, match="PORTAL_KEYRING is empty"):
        crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    with pytest.raises(crypto.VaultUnavailable):
        crypto.open_sealed(binding=BINDING, sealed=sealed)


def test_a_keyring_without_the_sealing_key_names_the_missing_key(settings) -> None:
    sealed = crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    settings.PORTAL_KEYRING = f"k9:{crypto.generate_kek()}"
    with pytest.raises(crypto.VaultKeyError, match=r"\(k1\) is not in PORTAL_KEYRING"):
        crypto.open_sealed(binding=BINDING, sealed=sealed)


def test_a_wrong_key_under_the_right_id_is_refused(settings) -> None:
    sealed = crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    settings.PORTAL_KEYRING = f"k1:{crypto.generate_kek()}"
    with pytest.raises(crypto.VaultKeyError, match="could not be decrypted"):
        crypto.open_sealed(binding=BINDING, sealed=sealed)


@pytest.mark.parametrize(
    "value",
    [
        "k1",
        "k1:not-base64!",
        f"k1:{base64.b64encode(os.urandom(16)).decode()}",
        f"k1:{base64.b64encode(os.urandom(32)).decode()},k1:{base64.b64encode(os.urandom(32)).decode()}",
        f"bad id:{base64.b64encode(os.urandom(32)).decode()}",
    ],
    ids=["no key", "not base64", "16-byte key", "duplicate id", "space in id"],
)
def test_a_malformed_keyring_is_refused_without_echoing_it(settings, value: str) -> None:
    settings.PORTAL_KEYRING = value
    with pytest.raises(crypto.VaultKeyError) as raised:
        crypto.keyring()
    assert str(raised.value) == crypto.KEYRING_MALFORMED
    assert value.split(":", 1)[-1] not in str(raised.value)


def test_the_first_key_seals_and_every_key_opens(settings) -> None:
    old = crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    settings.PORTAL_KEYRING = f"k2:{crypto.generate_kek()},{settings.PORTAL_KEYRING}"
    new = crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    assert (old.kek_id, new.kek_id) == ("k1", "k2")
    assert crypto.open_sealed(binding=BINDING, sealed=old).secret == SECRET
    assert crypto.open_sealed(binding=BINDING, sealed=new).secret == SECRET


def test_rewrapping_moves_the_data_key_to_the_newest_kek(settings) -> None:
    sealed = crypto.seal(binding=BINDING, secret=SECRET, otp=None)
    assert crypto.rewrap(binding=BINDING, kek_id="k1", wrapped_key=sealed.wrapped_key) is None
    settings.PORTAL_KEYRING = f"k2:{crypto.generate_kek()},{settings.PORTAL_KEYRING}"
    result = crypto.rewrap(binding=BINDING, kek_id="k1", wrapped_key=sealed.wrapped_key)
    assert result is not None
    new_id, wrapped = result
    settings.PORTAL_KEYRING = settings.PORTAL_KEYRING.split(",")[0]  # drop k1
    moved = crypto.Sealed(new_id, wrapped, sealed.secret_ciphertext, None)
    assert crypto.open_sealed(binding=BINDING, sealed=moved).secret == SECRET


def test_reprs_never_show_key_material() -> None:
    ring = crypto.keyring()
    sealed = crypto.seal(binding=BINDING, secret=SECRET, otp="pw")
    opened = crypto.open_sealed(binding=BINDING, sealed=sealed)
    assert crypto.keyring().current_key.hex() not in repr(ring)
    assert SECRET not in repr(opened)
    assert "pw" not in repr(opened).replace("Opened", "")


def test_a_malformed_keyring_fails_the_system_check(settings) -> None:
    from django.core.checks import run_checks

    settings.PORTAL_KEYRING = "k1:short"
    assert [m.id for m in run_checks() if m.id and m.id.startswith("vault.")] == ["vault.E001"]
    settings.PORTAL_KEYRING = ""
    assert not [m for m in run_checks() if m.id and m.id.startswith("vault.")]
