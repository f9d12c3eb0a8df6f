"""Writes for sign-in, two-factor authentication and profiles.

Every change that matters to security (sign-in, enrolment, disabling, new recovery codes,
step-up) leaves an audit record in the global chain, written in the same transaction.
"""

from __future__ import annotations

import time
import zoneinfo
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp import verify_token
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import User
from apps.accounts.selectors import (
    RECOVERY_DEVICE_NAME,
    TOTP_DEVICE_NAME,
    recovery_codes_remaining,
    recovery_device,
    totp_device_confirmed,
    totp_device_pending,
)
from apps.core.groups import user_group
from apps.core.realtime import CLOSE_REAUTHORISE, close_sockets_on_commit
from apps.core.trail import audit_record, audit_record_throttled

RECOVERY_CODE_COUNT = 10

CODE_WRONG = "That code is not right. Check your authenticator app's clock and try again."
CODE_THROTTLED = "Too many wrong codes. Try again in {seconds} s."
CODE_NO_DEVICE = "Two-factor authentication is not set up for this account."
TIME_ZONE_UNKNOWN = "Choose a time zone from the list."
THEMES = ("dark", "light")
THEME_UNKNOWN = "Choose dark or light."

# Session key: when (UNIX time) this session last proved possession of the second factor.
STEP_UP_SESSION_KEY = "step_up_at"


def _throttle_message(device: Device) -> str | None:
    """django-otp delays retries exponentially after wrong codes; say how long to wait."""
    allowed, data = device.verify_is_allowed()
    if allowed:
        return None
    locked_until = (data or {}).get("locked_until")
    seconds = 1
    if locked_until is not None:
        seconds = max(1, int((locked_until - timezone.now()).total_seconds() + 0.999))
    return CODE_THROTTLED.format(seconds=seconds)


def normalize_code(code: str) -> str:
    """Codes are typed with spaces or dashes ("123 456", "abcd-efgh"); compare without them."""
    return "".join(ch for ch in code.strip().lower() if ch not in " -\t")


def two_factor_check(*, user: User, code: str) -> Device:
    """Verify a 6-digit authenticator code or a one-time recovery code; return the device.

    Raises ValidationError with a user-facing message. A recovery code is consumed. Wrong codes
    are counted by django-otp (exponential back-off), so this is not wrapped in a transaction
    that a failure would roll back.
    """
    code = normalize_code(code)
    totp = totp_device_confirmed(user=user)
    if totp is None:
        raise ValidationError(CODE_NO_DEVICE)
    if code.isdigit() and len(code) == totp.digits:
        device: Device = totp
    else:
        static = recovery_device(user=user)
        if static is None:
            raise ValidationError(CODE_WRONG)
        device = static
    if (message := _throttle_message(device)) is not None:
        raise ValidationError(message)
    verified = verify_token(user, device.persistent_id, code)
    if verified is None:
        raise ValidationError(CODE_WRONG)
    return verified


def step_up_mark(*, request: HttpRequest) -> None:
    """Remember in the session that the second factor was proven just now."""
    request.session[STEP_UP_SESSION_KEY] = time.time()


def _method(device: Device) -> str:
    return "recovery_code" if isinstance(device, StaticDevice) else "authenticator_app"


def sign_in_record(*, user: User, device: Device | None, request: HttpRequest) -> None:
    detail: dict[str, Any] = {"second_factor": _method(device) if device else "none"}
    if isinstance(device, StaticDevice):
        detail["recovery_codes_left"] = recovery_codes_remaining(user=user)
    audit_record(action="auth.sign_in", actor=user, detail=detail, request=request)


def sign_in_failure_record(
    *, email: str, user: User | None, locked_out: bool, request: HttpRequest
) -> None:
    """A failed password check (or an attempt during a lockout), in the global chain.

    At most once a minute per client address, with the count of failures left out: a flood
    neither grows the chain nor makes sign-in queue on the chain head (apps/audit/throttle.py).
    """
    audit_record_throttled(
        action="auth.sign_in_failed",
        actor=user,
        detail={"email": email[:254], "locked_out": locked_out},
        request=request,
    )


def two_factor_failure_record(*, user: User, request: HttpRequest, purpose: str) -> None:
    audit_record(
        action="auth.second_factor_failed",
        actor=user,
        detail={"purpose": purpose},
        request=request,
    )


def totp_device_get_or_create_pending(*, user: User) -> TOTPDevice:
    """An unconfirmed authenticator device for enrolment; reused so reloading keeps the key."""
    device = totp_device_pending(user=user)
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def _recovery_codes_replace(*, user: User) -> list[str]:
    static = recovery_device(user=user)
    if static is None:
        static = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    static.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=static, token=code) for code in codes)
    return codes


def two_factor_enrol(
    *, user: User, device: TOTPDevice, code: str, request: HttpRequest
) -> list[str]:
    """Confirm the pending authenticator with its first code; return fresh recovery codes.

    The caller shows the codes once; they are not retrievable afterwards. The code is checked
    outside the transaction so that django-otp's count of wrong codes survives the refusal.
    """
    if device.user_id != user.pk or device.confirmed:
        raise ValidationError(CODE_NO_DEVICE)
    if (message := _throttle_message(device)) is not None:
        raise ValidationError(message)
    if not device.verify_token(normalize_code(code)):
        raise ValidationError(CODE_WRONG)
    return _two_factor_confirm(user=user, device=device, request=request)


@transaction.atomic(durable=True)
def _two_factor_confirm(*, user: User, device: TOTPDevice, request: HttpRequest) -> list[str]:
    # Other unconfirmed or older devices are leftovers of earlier attempts.
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = _recovery_codes_replace(user=user)
    audit_record(
        action="auth.two_factor_enrolled",
        actor=user,
        detail={"recovery_codes": RECOVERY_CODE_COUNT},
        request=request,
    )
    return codes


@transaction.atomic(durable=True)
def recovery_codes_regenerate(*, user: User, request: HttpRequest) -> list[str]:
    """Replace every recovery code with ten new ones (the old ones stop working at once)."""
    if totp_device_confirmed(user=user) is None:
        raise ValidationError(CODE_NO_DEVICE)
    codes = _recovery_codes_replace(user=user)
    audit_record(
        action="auth.recovery_codes_regenerated",
        actor=user,
        detail={"recovery_codes": RECOVERY_CODE_COUNT},
        request=request,
    )
    return codes


@transaction.atomic(durable=True)
def two_factor_disable(*, user: User, request: HttpRequest) -> None:
    """Remove the authenticator and the recovery codes. Organizations that require 2FA will
    send the user back to enrolment before their next page."""
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    audit_record(action="auth.two_factor_disabled", actor=user, request=request)
    # Open sockets were authorised with the second factor; close them. They reconnect, and
    # organizations that require 2FA refuse them until the user enrols again.
    close_sockets_on_commit(user_group(user.pk), CLOSE_REAUTHORISE)


@transaction.atomic(durable=True)
def step_up_confirm(*, user: User, device: Device, request: HttpRequest) -> None:
    step_up_mark(request=request)
    audit_record(
        action="auth.step_up_confirmed",
        actor=user,
        detail={"second_factor": _method(device)},
        request=request,
    )


def user_profile_update(*, user: User, time_zone: str, theme: str) -> User:
    if time_zone not in zoneinfo.available_timezones():
        raise ValidationError({"time_zone": TIME_ZONE_UNKNOWN})
    if theme not in THEMES:
        raise ValidationError({"theme": THEME_UNKNOWN})
    user.time_zone = time_zone
    user.theme = theme
    user.full_clean(exclude=["password", "current_org"])
    user.save(update_fields=["time_zone", "theme"])
    return user
