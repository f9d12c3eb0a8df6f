"""Signals the treasury sends, for the apps that build on it.

`destination_removed(sender=Destination, destination=..., actor=..., request=...)`: sent
inside the removal's transaction, after the destination is marked removed and the withdrawals
waiting for it are voided. Scheduled funding workflows that send to this destination must
pause (the workflow actions connect their receiver; a receiver that raises undoes the removal,
so it must not fail for anything but a real inconsistency).
"""

from __future__ import annotations

from django.dispatch import Signal

destination_removed = Signal()
