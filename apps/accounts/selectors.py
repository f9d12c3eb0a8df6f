"""Reads for people and their second factors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import User

if TYPE_CHECKING:
    # Only for the annotation: accounts sits below orgs and reaches organizations through the
    # user's memberships (a relation orgs declares), never by importing orgs at run time.
    from apps.orgs.models import Organization

# The names our services give the two devices; a user has at most one of each.
TOTP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"


def totp_device_confirmed(*, user: User) -> TOTPDevice | None:
    """The user's confirmed authenticator-app device, if they enrolled one."""
    device: TOTPDevice | None = (
        TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
    )
    return device


def totp_device_pending(*, user: User) -> TOTPDevice | None:
    """The device created for an enrolment that has not been confirmed with a code yet."""
    device: TOTPDevice | None = (
        TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    )
    return device


def recovery_device(*, user: User) -> StaticDevice | None:
    device: StaticDevice | None = (
        StaticDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
    )
    return device


def recovery_codes_remaining(*, user: User) -> int:
    count: int = StaticToken.objects.filter(device__user=user, device__confirmed=True).count()
    return count


def two_factor_enabled(*, user: User) -> bool:
    """True when the user signs in with an authenticator app (recovery codes alone don't count)."""
    return totp_device_confirmed(user=user) is not None


def orgs_requiring_two_factor(*, user: User) -> list[Organization]:
    memberships = user.memberships.select_related("org").filter(org__require_2fa=True)
    return [membership.org for membership in memberships.order_by("org__name")]
