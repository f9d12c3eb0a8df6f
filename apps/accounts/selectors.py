"""Reads for people and their second factors."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from apps.accounts.models import EncryptedTOTPDevice, RecoveryCode, RecoveryCodeDevice, User

if TYPE_CHECKING:
    # Only for the annotation: accounts sits below orgs and reaches organizations through the
    # user's memberships (a relation orgs declares), never by importing orgs at run time.
    from apps.orgs.models import Organization

# The names our services give the two devices; a user has at most one of each.
TOTP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"


def session_fingerprint(session_key: str) -> str:
    """What a pending enrolment stores to name its session: a hash, so the table holds no
    second copy of a bearer credential (the session key is the cookie's value)."""
    return hashlib.sha256(f"enrolment-session|{session_key}".encode()).hexdigest()


def totp_device_confirmed(*, user: User) -> EncryptedTOTPDevice | None:
    """The user's confirmed authenticator-app device, if they enrolled one."""
    device: EncryptedTOTPDevice | None = (
        EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
    )
    return device


def totp_device_pending(*, user: User, session_key: str) -> EncryptedTOTPDevice | None:
    """The device this session created for an enrolment not confirmed yet. Another session's
    pending device is never returned: its secret was shown to that session only."""
    if not session_key:
        return None
    device: EncryptedTOTPDevice | None = (
        EncryptedTOTPDevice.objects.filter(
            user=user, confirmed=False, enrolment_session=session_fingerprint(session_key)
        )
        .order_by("-id")
        .first()
    )
    return device


def recovery_device(*, user: User) -> RecoveryCodeDevice | None:
    device: RecoveryCodeDevice | None = (
        RecoveryCodeDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
    )
    return device


def recovery_codes_remaining(*, user: User) -> int:
    count: int = RecoveryCode.objects.filter(
        device__user=user, device__confirmed=True, used_at__isnull=True
    ).count()
    return count


def two_factor_enabled(*, user: User) -> bool:
    """True when the user signs in with an authenticator app (recovery codes alone don't count)."""
    return totp_device_confirmed(user=user) is not None


def orgs_requiring_two_factor(*, user: User) -> list[Organization]:
    memberships = user.memberships.select_related("org").filter(org__require_2fa=True)
    return [membership.org for membership in memberships.order_by("org__name")]
