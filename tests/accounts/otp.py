"""The codes an authenticator app would show, computed from an authenticator device's key."""

from __future__ import annotations

import time
from typing import Any

from django_otp.oath import hotp

from apps.accounts.models import EncryptedTOTPDevice, SecondFactorThrottle


def totp_code(device: EncryptedTOTPDevice) -> str:
    """The code an authenticator app shows now that the device has not accepted yet.

    django-otp refuses a code of a time step it has already accepted (replay protection), and
    accepts one step either side of the current one; so pick the current step, or the next one
    when the current one was used by an earlier sign-in in the same 30 seconds.
    """
    device.refresh_from_db()
    now_t = int((time.time() - device.t0) // device.step) + device.drift
    for t in (now_t, now_t + 1):
        if t > device.last_t:
            return f"{hotp(device.bin_key, t, device.digits):0{device.digits}d}"
    raise AssertionError("Both acceptable time steps were already used.")


def wrong_code(device: EncryptedTOTPDevice) -> str:
    """A 6-digit code that is not valid for any step the device would accept now."""
    device.refresh_from_db()
    now_t = int((time.time() - device.t0) // device.step) + device.drift
    valid = {f"{hotp(device.bin_key, t, device.digits):06d}" for t in range(now_t - 2, now_t + 3)}
    return next(code for code in ("000000", "111111", "222222") if code not in valid)


def throttle_reset(user: Any) -> None:
    """Forget the user's wrong codes, so a test's next code is checked at once (a quick retry
    after a wrong code would otherwise have to wait a second)."""
    SecondFactorThrottle.objects.filter(user=user).delete()
