"""Second factors at rest: a database dump holds no authenticator key and no recovery code."""

from __future__ import annotations

import base64
import importlib
import os
import subprocess
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.checks import PLAINTEXT_DEVICES, plaintext_otp_devices_check
from apps.accounts.models import EncryptedTOTPDevice, RecoveryCode, RecoveryCodeDevice, Verdict
from apps.accounts.services import recovery_codes_set, totp_device_create
from apps.core.crypto import CryptoKeyError
from tests.accounts.otp import totp_code
from tests.factories import UserFactory

SETUP = reverse("accounts:two-factor-setup")
migration = importlib.import_module("apps.accounts.migrations.0004_second_factor_secrets_at_rest")


def _enrol(email: str) -> tuple[bytes, list[str]]:
    """Enrol through the real pages; return the authenticator key and the recovery codes."""
    user = UserFactory(email=email)
    client = Client()
    client.force_login(user)
    manual_key = client.get(SETUP).context["manual_key"].replace(" ", "")
    device = EncryptedTOTPDevice.objects.get(user=user, confirmed=False)
    assert base64.b32encode(device.bin_key).decode() == manual_key
    response = client.post(SETUP, {"code": totp_code(device)})
    assert response.status_code == 200
    return device.bin_key, list(response.context["codes"])


def _pg_dump() -> str:
    settings = connection.settings_dict
    env = {**os.environ}
    if settings.get("PASSWORD"):
        env["PGPASSWORD"] = settings["PASSWORD"]
    command = ["pg_dump", "--no-owner", "--dbname", settings["NAME"]]
    if settings.get("HOST"):
        command += ["--host", settings["HOST"]]
    if settings.get("PORT"):
        command += ["--port", str(settings["PORT"])]
    if settings.get("USER"):
        command += ["--username", settings["USER"]]
    result = subprocess.run(command, capture_output=True, check=True, env=env, timeout=120)
    return result.stdout.decode()


@pytest.mark.django_db(transaction=True)
def test_a_database_dump_holds_no_authenticator_key_and_no_recovery_code() -> None:
    forbidden: list[str] = []
    for email in ("ada@example.test", "grace@example.test"):
        key, codes = _enrol(email)
        b32 = base64.b32encode(key).decode()
        forbidden += [key.hex(), key.hex().upper(), b32, b32.lower(), b32.rstrip("=")]
        forbidden += codes + [code.upper() for code in codes]

    dump = _pg_dump()

    # The dump is of the right database and holds the enrolments, sealed and hashed.
    assert "accounts_encryptedtotpdevice" in dump
    assert EncryptedTOTPDevice.objects.filter(confirmed=True).count() == 2
    assert RecoveryCode.objects.count() == 20
    leaked = [secret for secret in forbidden if secret in dump]
    assert leaked == []


def test_a_key_copied_to_another_device_row_does_not_decrypt(db: Any) -> None:
    ada, eve = UserFactory(), UserFactory()
    victim = totp_device_create(user=ada, confirmed=True)
    mallory = totp_device_create(user=eve, confirmed=True)
    mallory.kek_id, mallory.key_ciphertext = victim.kek_id, victim.key_ciphertext
    mallory.save(update_fields=["kek_id", "key_ciphertext"])
    with pytest.raises(CryptoKeyError):
        _ = mallory.bin_key
    # Even the same user's second row cannot open it: the row id is bound too.
    twin = totp_device_create(user=ada, confirmed=False)
    twin.key_ciphertext = victim.key_ciphertext
    with pytest.raises(CryptoKeyError):
        _ = twin.bin_key


def test_a_recovery_code_hash_copied_to_another_user_does_not_verify(db: Any) -> None:
    ada, eve = UserFactory(), UserFactory()
    ours = recovery_codes_set(user=ada, codes=["abcd2345"])
    theirs = recovery_codes_set(user=eve, codes=["zzzz7777"])
    RecoveryCode.objects.filter(device=theirs).update(
        digest=RecoveryCode.objects.get(device=ours).digest
    )
    assert theirs.verify("abcd2345") is Verdict.WRONG


def test_the_data_migration_seals_old_keys_and_hashes_old_codes(db: Any) -> None:
    user = UserFactory()
    old_totp = TOTPDevice.objects.create(user=user, name="Phone", confirmed=True, last_t=42)
    old_key = old_totp.bin_key
    old_static = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    StaticToken.objects.create(device=old_static, token="oldcode2")

    migration.forward(apps, None)

    assert not TOTPDevice.objects.exists()
    assert not StaticToken.objects.exists()
    device = EncryptedTOTPDevice.objects.get(user=user)
    assert (device.name, device.confirmed, device.last_t) == ("Phone", True, 42)
    assert device.bin_key == old_key
    assert old_key.hex().encode() not in bytes(device.key_ciphertext)
    recovery = RecoveryCodeDevice.objects.get(user=user)
    assert RecoveryCode.objects.get(device=recovery).digest != "oldcode2"
    assert recovery.verify("oldcode2") is Verdict.ACCEPTED


def test_the_data_migration_refuses_to_run_backwards() -> None:
    with pytest.raises(RuntimeError, match="cannot be reversed"):
        migration.refuse(apps, None)


def test_rotation_reseals_authenticators_and_names_codes_on_an_old_key(
    db: Any, settings: Any
) -> None:
    from io import StringIO

    from django.core.management import call_command

    from apps.core.crypto import generate_kek

    user = UserFactory()
    device = totp_device_create(user=user, confirmed=True)
    recovery_codes_set(user=user, codes=["abcd2345"])
    key, old_ring = device.bin_key, settings.PORTAL_KEYRING
    settings.PORTAL_KEYRING = f"new:{generate_kek()},{old_ring}"

    out = StringIO()
    call_command("two_factor_rotate", stdout=out)

    device.refresh_from_db()
    assert device.kek_id == "new"
    assert device.bin_key == key
    assert "Authenticators re-sealed: 1" in out.getvalue()
    old_id = old_ring.split(":", 1)[0]
    assert f"Recovery codes still hashed under {old_id}: 1 (of 1 people)" in out.getvalue()
    # The old key still opens the old codes meanwhile.
    assert RecoveryCodeDevice.objects.get(user=user).verify("abcd2345") is Verdict.ACCEPTED


def test_the_data_migration_refuses_to_convert_without_a_keyring(db: Any, settings: Any) -> None:
    TOTPDevice.objects.create(user=UserFactory(), name="Phone", confirmed=True)
    settings.PORTAL_KEYRING = ""
    with pytest.raises(RuntimeError, match="cannot without the keyring"):
        migration.forward(apps, None)
    assert TOTPDevice.objects.count() == 1
    assert not EncryptedTOTPDevice.objects.exists()


def test_a_plaintext_django_otp_device_fails_the_database_check(db: Any) -> None:
    """django-otp honours a row in its own tables as a second factor, key in the clear."""
    assert plaintext_otp_devices_check(databases=["default"]) == []
    TOTPDevice.objects.create(user=UserFactory(), name="Phone", confirmed=True)
    StaticDevice.objects.create(user=UserFactory(), name="Codes", confirmed=True)

    [error] = plaintext_otp_devices_check(databases=["default"])

    assert error.id == "accounts.E001"
    assert str(error.msg) == PLAINTEXT_DEVICES.format(totp=1, static=1)
    with pytest.raises(SystemCheckError, match=r"accounts\.E001"):
        call_command("check", databases=["default"])


def test_the_database_check_is_silent_for_the_portals_own_devices(db: Any) -> None:
    user = UserFactory()
    totp_device_create(user=user, confirmed=True)
    recovery_codes_set(user=user, codes=["abcd2345"])
    assert plaintext_otp_devices_check(databases=["default"]) == []
