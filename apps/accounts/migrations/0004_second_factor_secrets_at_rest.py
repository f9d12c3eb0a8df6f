"""Move every second factor out of django-otp's plaintext tables.

Each TOTPDevice becomes an EncryptedTOTPDevice whose key is sealed with the keyring (bound to
the new row and its user); each StaticDevice becomes a RecoveryCodeDevice whose codes are
stored only as keyed hashes. The plaintext rows are then deleted. Sessions verified with an old
device ask for a code again (the device's persistent id changed), which is the safe outcome.

With rows to convert and no PORTAL_KEYRING, the migration stops with the keyring's error:
nothing is ever copied in plaintext. It cannot be reversed: the recovery codes exist only as
hashes now, so the reverse refuses with an explanation instead of pretending.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

NEEDS_KEYRING = (
    "accounts.0004 must seal {devices} authenticator key(s) and hash the recovery codes of "
    "{static} person(s), and cannot without the keyring: {error} Set PORTAL_KEYRING (make run "
    "keeps one in var/keyring) and migrate again. Nothing was converted."
)
IRREVERSIBLE = (
    "accounts.0004 cannot be reversed: recovery codes are stored only as keyed hashes and "
    "cannot be turned back into django-otp's plaintext tokens. Restore a backup taken before "
    "this migration instead, or ask users to enrol again."
)


def forward(apps: Any, schema_editor: Any) -> None:
    from apps.accounts.sealing import current_kek_id, recovery_code_digest, totp_key_seal
    from apps.core.crypto import CryptoError

    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    StaticDevice = apps.get_model("otp_static", "StaticDevice")
    EncryptedTOTPDevice = apps.get_model("accounts", "EncryptedTOTPDevice")
    RecoveryCodeDevice = apps.get_model("accounts", "RecoveryCodeDevice")
    RecoveryCode = apps.get_model("accounts", "RecoveryCode")

    devices, static = TOTPDevice.objects.count(), StaticDevice.objects.count()
    if not (devices or static):
        return  # A new installation: nothing to convert, no keyring needed yet.
    try:
        current_kek_id()
    except CryptoError as error:
        raise RuntimeError(
            NEEDS_KEYRING.format(devices=devices, static=static, error=error)
        ) from None

    for old in TOTPDevice.objects.all().iterator():
        new = EncryptedTOTPDevice.objects.create(
            user_id=old.user_id,
            name=old.name,
            confirmed=old.confirmed,
            step=old.step,
            t0=old.t0,
            digits=old.digits,
            tolerance=old.tolerance,
            drift=old.drift,
            last_t=old.last_t,
            last_used_at=old.last_used_at,
        )
        # An unconfirmed device belonged to a session we cannot name any more; it stays
        # unclaimed (no session matches it) and is cleaned up at the user's next enrolment.
        kek_id, ciphertext = totp_key_seal(
            device_id=new.pk, user_id=old.user_id, key=bytes.fromhex(old.key)
        )
        EncryptedTOTPDevice.objects.filter(pk=new.pk).update(
            kek_id=kek_id, key_ciphertext=ciphertext, created_at=old.created_at
        )
        old.delete()

    for old in StaticDevice.objects.all().iterator():
        new = RecoveryCodeDevice.objects.create(
            user_id=old.user_id,
            name=old.name,
            confirmed=old.confirmed,
            last_used_at=old.last_used_at,
        )
        RecoveryCodeDevice.objects.filter(pk=new.pk).update(created_at=old.created_at)
        tokens = {token.strip().lower() for token in old.token_set.values_list("token", flat=True)}
        if tokens:
            kek_id = current_kek_id()
            RecoveryCode.objects.bulk_create(
                RecoveryCode(
                    device=new,
                    kek_id=kek_id,
                    digest=recovery_code_digest(user_id=old.user_id, code=token, kek_id=kek_id),
                )
                for token in tokens
            )
        old.delete()  # Its tokens go with it (cascade).


def refuse(apps: Any, schema_editor: Any) -> None:
    raise RuntimeError(IRREVERSIBLE)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_second_factor_devices"),
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(forward, refuse)]
