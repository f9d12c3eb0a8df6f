"""Re-wrap every stored data key under the newest key-encryption key.

Put the new KEK first in PORTAL_KEYRING (keep the old ones after it), run this command, and
remove an old KEK only once a run reports no failures. Each row is re-wrapped in its own
transaction with a conditional update, so the command can be interrupted and run again: rows
already under the newest KEK are counted as current and left alone.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.vault import crypto
from apps.vault.models import Credential
from apps.vault.services import LIVE_STATUSES, credential_rewrap


class Command(BaseCommand):
    help = "Re-wrap every credential's data key under the newest KEK in PORTAL_KEYRING."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            current = crypto.keyring_check()
        except crypto.VaultError as error:
            raise CommandError(str(error)) from None
        counts = {"rewrapped": 0, "current": 0, "failed": 0}
        # Cancel-only keys keep their sealed secret (they must still cancel): re-wrap them too.
        ids = Credential.objects.filter(status__in=LIVE_STATUSES).order_by("pk")
        for credential_id in ids.values_list("pk", flat=True).iterator():
            outcome, message = credential_rewrap(credential_id=credential_id)
            counts[outcome] += 1
            if message:
                self.stderr.write(f"credential {credential_id}: {message}")
        self.stdout.write(
            f"Newest key: {current}. rewrapped: {counts['rewrapped']}, "
            f"already current: {counts['current']}, failed: {counts['failed']}"
        )
        if counts["failed"]:
            raise CommandError(
                f"{counts['failed']} credential(s) could not be re-wrapped; keep their old key "
                "in PORTAL_KEYRING."
            )
