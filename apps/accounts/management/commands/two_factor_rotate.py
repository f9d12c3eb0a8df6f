"""Re-seal every authenticator key under the newest key-encryption key, and say which recovery
codes still depend on an older one.

Run it after putting a new KEK first in PORTAL_KEYRING (as for `vault_rotate`). Authenticator
keys are re-sealed row by row (safe to interrupt and run again). Recovery codes cannot be
re-hashed, since only their hashes exist: they keep working while the KEK they were hashed under
stays in the keyring, so an old KEK may go only once this command reports no codes under it
(their owners generate new codes, or the codes are used up).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from apps.accounts.models import EncryptedTOTPDevice, RecoveryCode
from apps.accounts.services import totp_device_reseal
from apps.core.crypto import CryptoError, keyring_check


class Command(BaseCommand):
    help = "Re-seal authenticator keys under the newest KEK; list recovery codes on older KEKs."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            current = keyring_check()
        except CryptoError as error:
            raise CommandError(str(error)) from None
        resealed = failed = 0
        stale = EncryptedTOTPDevice.objects.exclude(kek_id=current).order_by("pk")
        for device_id in stale.values_list("pk", flat=True).iterator():
            try:
                resealed += totp_device_reseal(device_id=device_id)
            except CryptoError as error:
                failed += 1
                self.stderr.write(f"authenticator {device_id}: {error}")
        self.stdout.write(f"Newest key: {current}. Authenticators re-sealed: {resealed}.")
        older = (
            RecoveryCode.objects.filter(used_at__isnull=True)
            .exclude(kek_id=current)
            .values("kek_id")
            .annotate(codes=Count("pk"), people=Count("device__user", distinct=True))
            .order_by("kek_id")
        )
        for row in older:
            self.stdout.write(
                f"Recovery codes still hashed under {row['kek_id']}: {row['codes']} "
                f"(of {row['people']} people); keep that key until they generate new codes."
            )
        if failed:
            raise CommandError(
                f"{failed} authenticator(s) could not be re-sealed; keep their old key in "
                "PORTAL_KEYRING."
            )
