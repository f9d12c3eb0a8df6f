"""Writes for sign-in, two-factor authentication and profiles.

Every change that matters to security (sign-in, enrolment, disabling, new recovery codes,
step-up) leaves an audit record in the global chain, written in the same transaction.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
import zoneinfo
from datetime import timedelta
from functools import partial
from importlib import import_module
from typing import Any, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from django_otp.models import Device

from apps.accounts.models import (
    EncryptedTOTPDevice,
    RecoveryCode,
    RecoveryCodeDevice,
    User,
    Verdict,
    throttle_locked_until,
)
from apps.accounts.sealing import current_kek_id, recovery_code_digest, totp_key_seal
from apps.accounts.selectors import (
    RECOVERY_DEVICE_NAME,
    TOTP_DEVICE_NAME,
    recovery_codes_remaining,
    recovery_device,
    session_fingerprint,
    totp_device_confirmed,
    totp_device_pending,
)
from apps.accounts.tasks import password_reset_email_task, security_notice_task
from apps.core.clientip import client_ip
from apps.core.emails import email_normalize
from apps.core.groups import session_group, user_group
from apps.core.ratelimit import window_hit
from apps.core.realtime import CLOSE_REAUTHORISE, CLOSE_SIGNED_OUT, close_sockets_on_commit
from apps.core.trail import audit_record, audit_record_throttled

RECOVERY_CODE_COUNT = 10
# 40 random bits in 8 base32 characters: django-otp's static token format, which the forms
# and the printed sheets already expect.
RECOVERY_CODE_BYTES = 5
TOTP_KEY_BYTES = 20
# Pending enrolments nobody finished are removed when the user starts another one.
PENDING_ENROLMENT_MAX_AGE = timedelta(days=1)

CODE_WRONG = "That code is not right. Check your authenticator app's clock and try again."
CODE_THROTTLED = "Too many wrong codes. Try again in {seconds} s."
CODE_NO_DEVICE = "Two-factor authentication is not set up for this account."
TIME_ZONE_UNKNOWN = "Choose a time zone from the list."
THEMES = ("dark", "light")
THEME_UNKNOWN = "Choose dark or light."

# Session key: when (UNIX time) this session last proved possession of the second factor.
STEP_UP_SESSION_KEY = "step_up_at"

# The kinds of security notice emailed to the user (apps.accounts.tasks).
NOTICE_2FA_ENABLED = "2fa_enabled"
NOTICE_2FA_DISABLED = "2fa_disabled"
NOTICE_RECOVERY_CODES = "recovery_codes_regenerated"


def _notify_on_commit(*, user: User, kind: str) -> None:
    """Email a security notice once the change commits.

    Robust: the change has committed by then, so a broker outage is logged, never raised into
    the request (which would lose an enrolment's only display of its recovery codes, or skip
    what the caller does after the service, such as keeping a session's auth hash) and never
    stops the callbacks registered after this one.
    """
    transaction.on_commit(partial(security_notice_task.delay, user.pk, kind), robust=True)


def _throttle_message(*, user: User) -> str | None:
    """Wrong codes delay the next check exponentially (per user); say how long to wait."""
    locked_until = throttle_locked_until(user_id=user.pk)
    if locked_until is None:
        return None
    seconds = max(1, int((locked_until - timezone.now()).total_seconds() + 0.999))
    return CODE_THROTTLED.format(seconds=seconds)


def _verdict_raise(*, user: User, verdict: Verdict) -> None:
    if verdict is Verdict.THROTTLED:
        raise ValidationError(_throttle_message(user=user) or CODE_THROTTLED.format(seconds=1))
    if verdict is Verdict.WRONG:
        raise ValidationError(CODE_WRONG)


def normalize_code(code: str) -> str:
    """Codes are typed with spaces or dashes ("123 456", "abcd-efgh"); compare without them."""
    return "".join(ch for ch in code.strip().lower() if ch not in " -\t")


def two_factor_check(
    *, user: User, code: str, request: HttpRequest | None = None
) -> EncryptedTOTPDevice | RecoveryCodeDevice:
    """Verify a 6-digit authenticator code or a one-time recovery code; return the device.

    Raises ValidationError with a user-facing message. A code is consumed exactly once, even by
    parallel requests (the device's `verify`). Wrong codes count against the user's throttle,
    which commits with the refusal; a used recovery code is audited in the same transaction
    that consumes it.
    """
    code = normalize_code(code)
    totp = totp_device_confirmed(user=user)
    if totp is None:
        raise ValidationError(CODE_NO_DEVICE)
    device: EncryptedTOTPDevice | RecoveryCodeDevice
    if code.isdigit() and len(code) == totp.digits:
        device = totp
    else:
        static = recovery_device(user=user)
        if static is None:
            raise ValidationError(CODE_WRONG)
        device = static
    with transaction.atomic(durable=True):
        verdict = device.verify(code)
        if verdict is Verdict.ACCEPTED and isinstance(device, RecoveryCodeDevice):
            audit_record(
                action="auth.recovery_code_used",
                actor=user,
                detail={"recovery_codes_left": recovery_codes_remaining(user=user)},
                request=request,
            )
    _verdict_raise(user=user, verdict=verdict)
    return device


def step_up_mark(*, request: HttpRequest) -> None:
    """Remember in the session that the second factor was proven just now."""
    request.session[STEP_UP_SESSION_KEY] = time.time()


def _method(device: Device) -> str:
    return "recovery_code" if isinstance(device, RecoveryCodeDevice) else "authenticator_app"


def sign_in_record(*, user: User, device: Device | None, request: HttpRequest) -> None:
    detail: dict[str, Any] = {"second_factor": _method(device) if device else "none"}
    if isinstance(device, RecoveryCodeDevice):
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


def lockout_record(*, email: str, request: HttpRequest) -> None:
    """django-axes locked this account for this client address: on the record once per lockout.

    Axes signals a lockout on the failure that sets it off and again on every attempt during
    the cool-off; the throttle, keyed by account and address for the cool-off's length, keeps
    the first and counts the rest (`suppressed` on the next lockout's record).
    """
    email = email.strip().lower()[:254]
    cool_off = max(60, int(float(settings.AXES_COOLOFF_TIME) * 3600))
    audit_record_throttled(
        action="auth.locked_out",
        source=f"{email}|{client_ip(request)}",
        window=cool_off,
        actor=User.objects.filter(email__iexact=email).first(),
        detail={"email": email, "cool_off_minutes": cool_off // 60},
        request=request,
    )


def two_factor_failure_record(*, user: User, request: HttpRequest, purpose: str) -> None:
    audit_record(
        action="auth.second_factor_failed",
        actor=user,
        detail={"purpose": purpose},
        request=request,
    )


def totp_device_create(
    *, user: User, confirmed: bool, name: str = TOTP_DEVICE_NAME, session_key: str = ""
) -> EncryptedTOTPDevice:
    """A new authenticator device with a fresh random key, sealed for its own row.

    The row is inserted first (its id goes into the associated data), then the sealed key is
    written; both in one transaction, so no row without a key is ever visible. Raises
    apps.core.crypto.CryptoError without a keyring: there is no plaintext fallback.
    """
    with transaction.atomic():
        device: EncryptedTOTPDevice = EncryptedTOTPDevice.objects.create(
            user=user,
            name=name,
            confirmed=confirmed,
            enrolment_session=session_fingerprint(session_key) if session_key else "",
        )
        device.kek_id, ciphertext = totp_key_seal(
            device_id=device.pk, user_id=user.pk, key=os.urandom(TOTP_KEY_BYTES)
        )
        device.key_ciphertext = ciphertext
        device.save(update_fields=["kek_id", "key_ciphertext"])
    return device


def totp_device_reseal(*, device_id: int) -> bool:
    """Re-seal one authenticator key under the newest KEK; False if it already was (or the
    device is gone). Under the row lock, so a parallel verification reads a whole row."""
    with transaction.atomic(durable=True):
        device = EncryptedTOTPDevice.objects.select_for_update().filter(pk=device_id).first()
        if device is None or device.kek_id == current_kek_id():
            return False
        device.kek_id, device.key_ciphertext = totp_key_seal(
            device_id=device.pk, user_id=device.user_id, key=device.bin_key
        )
        device.save(update_fields=["kek_id", "key_ciphertext"])
    return True


def totp_device_get_or_create_pending(*, user: User, session_key: str) -> EncryptedTOTPDevice:
    """This session's unconfirmed authenticator device; reloading the page keeps its key.

    Each session gets its own secret: a second session (another browser, or someone who took
    over the first one's cookie later) is shown a new key and cannot confirm this one.
    """
    device = totp_device_pending(user=user, session_key=session_key)
    if device is None:
        EncryptedTOTPDevice.objects.filter(
            user=user,
            confirmed=False,
            created_at__lt=timezone.now() - PENDING_ENROLMENT_MAX_AGE,
        ).delete()
        device = totp_device_create(user=user, confirmed=False, session_key=session_key)
    return device


def _recovery_codes_replace(*, user: User) -> list[str]:
    static = recovery_device(user=user)
    if static is None:
        static = RecoveryCodeDevice.objects.create(
            user=user, name=RECOVERY_DEVICE_NAME, confirmed=True
        )
    static.codes.all().delete()
    codes: set[str] = set()
    while len(codes) < RECOVERY_CODE_COUNT:
        codes.add(base64.b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode().lower())
    kek_id = current_kek_id()
    RecoveryCode.objects.bulk_create(
        RecoveryCode(
            device=static,
            kek_id=kek_id,
            digest=recovery_code_digest(user_id=user.pk, code=code, kek_id=kek_id),
        )
        for code in codes
    )
    return sorted(codes)


def recovery_codes_set(*, user: User, codes: list[str]) -> RecoveryCodeDevice:
    """Store given codes (hashed) as the user's recovery codes: for tests and data imports."""
    with transaction.atomic():
        static = recovery_device(user=user) or RecoveryCodeDevice.objects.create(
            user=user, name=RECOVERY_DEVICE_NAME, confirmed=True
        )
        static.codes.all().delete()
        kek_id = current_kek_id()
        RecoveryCode.objects.bulk_create(
            RecoveryCode(
                device=static,
                kek_id=kek_id,
                digest=recovery_code_digest(
                    user_id=user.pk, code=normalize_code(code), kek_id=kek_id
                ),
            )
            for code in codes
        )
    return static


def two_factor_enrol(
    *, user: User, device: EncryptedTOTPDevice, code: str, request: HttpRequest
) -> list[str]:
    """Confirm this session's pending authenticator with its first code; return fresh
    recovery codes.

    The caller shows the codes once; they are not retrievable afterwards (only their keyed
    hashes are stored). The code is checked in its own transaction so that a wrong code's count
    survives the refusal.
    """
    session_key = request.session.session_key or ""
    if (
        device.user_id != user.pk
        or device.confirmed
        or not session_key
        or device.enrolment_session != session_fingerprint(session_key)
    ):
        raise ValidationError(CODE_NO_DEVICE)
    if (message := _throttle_message(user=user)) is not None:
        raise ValidationError(message)
    _verdict_raise(user=user, verdict=device.verify(normalize_code(code)))
    return _two_factor_confirm(user=user, device=device, request=request)


@transaction.atomic(durable=True)
def _two_factor_confirm(
    *, user: User, device: EncryptedTOTPDevice, request: HttpRequest
) -> list[str]:
    claimed = EncryptedTOTPDevice.objects.filter(pk=device.pk, confirmed=False).update(
        confirmed=True, enrolment_session=""
    )
    if claimed != 1:  # A parallel request confirmed (or removed) it first.
        raise ValidationError(CODE_NO_DEVICE)
    device.confirmed, device.enrolment_session = True, ""
    # Other devices are leftovers of earlier attempts, or other sessions' pending enrolments.
    EncryptedTOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    codes = _recovery_codes_replace(user=user)
    audit_record(
        action="auth.two_factor_enrolled",
        actor=user,
        detail={"recovery_codes": RECOVERY_CODE_COUNT},
        request=request,
    )
    # From now on every session of this user needs the second factor, sockets too: close the
    # open ones so each reconnects and is judged afresh (another session's, never verified, is
    # then refused; this session's own reconnect after it is marked verified).
    close_sockets_on_commit(user_group(user.pk), CLOSE_REAUTHORISE)
    _notify_on_commit(user=user, kind=NOTICE_2FA_ENABLED)
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
    _notify_on_commit(user=user, kind=NOTICE_RECOVERY_CODES)
    return codes


@transaction.atomic(durable=True)
def two_factor_disable(*, user: User, request: HttpRequest) -> None:
    """Remove the authenticator and the recovery codes. Organizations that require 2FA will
    send the user back to enrolment before their next page."""
    EncryptedTOTPDevice.objects.filter(user=user).delete()
    RecoveryCodeDevice.objects.filter(user=user).delete()
    audit_record(action="auth.two_factor_disabled", actor=user, request=request)
    # Open sockets were authorised with the second factor; close them. They reconnect, and
    # organizations that require 2FA refuse them until the user enrols again. Registered before
    # the notice: closing what no longer qualifies comes first.
    close_sockets_on_commit(user_group(user.pk), CLOSE_REAUTHORISE)
    _notify_on_commit(user=user, kind=NOTICE_2FA_DISABLED)


@transaction.atomic(durable=True)
def step_up_confirm(*, user: User, device: Device, request: HttpRequest) -> None:
    step_up_mark(request=request)
    audit_record(
        action="auth.step_up_confirmed",
        actor=user,
        detail={"second_factor": _method(device)},
        request=request,
    )


# Passwords and sessions.

NOTICE_PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a kind of notice, not a password
NOTICE_OTHER_SESSIONS = "other_sessions_signed_out"

RESET_ADDRESS_SCOPE = "password-reset-email"
RESET_IP_SCOPE = "password-reset-ip"


def _session_store_class() -> type[SessionBase]:
    store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
    return store


def _sessions_of(*, user: User, except_key: str | None) -> list[str]:
    """The keys of the user's live sessions other than `except_key`.

    Database sessions are not indexed by user, so this reads every live session: fine for an
    institutional portal's few thousand sessions, and exact (it cannot miss one opened before
    a registry existed). It needs a database-backed SESSION_ENGINE (db or cached_db).
    """
    model = cast(Any, _session_store_class()).get_model_class()
    keys = []
    live = model.objects.filter(expire_date__gt=timezone.now())
    for session in live.only("session_key", "session_data").iterator():
        if session.session_key == except_key:
            continue
        if str(session.get_decoded().get(SESSION_KEY)) == str(user.pk):
            keys.append(session.session_key)
    return keys


def _sessions_end(keys: list[str]) -> None:
    """Delete the sessions (through their store, so a cache copy goes too) and close every
    socket each of them opened, once the transaction commits."""
    store_class = _session_store_class()
    for key in keys:
        store_class(session_key=key).delete()
        close_sockets_on_commit(session_group(key), CLOSE_SIGNED_OUT)


@transaction.atomic(durable=True)
def sessions_end_others(*, user: User, request: HttpRequest) -> int:
    """Sign the user out everywhere but in this request's session; return how many ended."""
    keys = _sessions_of(user=user, except_key=request.session.session_key)
    _sessions_end(keys)
    audit_record(
        action="auth.other_sessions_signed_out",
        actor=user,
        detail={"sessions": len(keys)},
        request=request,
    )
    _notify_on_commit(user=user, kind=NOTICE_OTHER_SESSIONS)
    return len(keys)


@sensitive_variables("new_password")
@transaction.atomic(durable=True)
def password_change(*, user: User, new_password: str, request: HttpRequest) -> None:
    """Set a new password (the form checked the old one and the validators). Every other
    session ends with its sockets; the caller keeps this one (update_session_auth_hash)."""
    user.set_password(new_password)
    user.save(update_fields=["password"])
    _sessions_end(_sessions_of(user=user, except_key=request.session.session_key))
    audit_record(action="auth.password_changed", actor=user, request=request)
    _notify_on_commit(user=user, kind=NOTICE_PASSWORD_CHANGED)


@transaction.atomic(durable=True)
def password_reset_completed(*, user: User, request: HttpRequest) -> None:
    """After a reset by email (Django's view set the password): no session of the old
    password survives, and the user hears of it."""
    _sessions_end(_sessions_of(user=user, except_key=None))
    audit_record(action="auth.password_reset_completed", actor=user, request=request)
    _notify_on_commit(user=user, kind=NOTICE_PASSWORD_CHANGED)


def password_reset_allowed(*, ip: str | None, email: str) -> bool:
    """Per client address and per email address (existing or not, so the answer reveals
    nothing about accounts), at most so many reset requests per window.

    Counted like every other per-source limit (apps.core.ratelimit): without Redis the count
    reads 0 and resets stay open, since a reset only ever emails the account's own address.
    """
    window = int(settings.PASSWORD_RESET_WINDOW)
    by_address = window_hit(scope=RESET_ADDRESS_SCOPE, source=email_normalize(email), window=window)
    # Without a vouched-for address (a misconfigured proxy) only the email's limit applies.
    by_ip = window_hit(scope=RESET_IP_SCOPE, source=ip, window=window) if ip else None
    return by_address.count <= int(settings.PASSWORD_RESET_LIMIT_PER_ADDRESS) and (
        by_ip is None or by_ip.count <= int(settings.PASSWORD_RESET_LIMIT_PER_IP)
    )


def password_reset_request(*, email: str) -> None:
    """Enqueue the reset email on commit, whether or not the address has an account: the
    request does the same work either way, so neither its answer nor its timing tells."""
    transaction.on_commit(
        partial(password_reset_email_task.delay, email_normalize(email)), robust=True
    )


def password_reset_send(*, email: str) -> int:
    """In the worker: email a reset link to each active account with this address (Django's
    PasswordResetForm and token generator); audit each. Returns how many were sent."""
    form = PasswordResetForm({"email": email})
    if not form.is_valid():
        return 0
    users = list(form.get_users(form.cleaned_data["email"]))
    if not users:
        return 0
    site = urlsplit(settings.SITE_URL)
    with transaction.atomic(durable=True):
        for user in users:
            audit_record(action="auth.password_reset_requested", actor=user)
    form.save(
        domain_override=site.netloc,
        use_https=site.scheme == "https",
        subject_template_name="accounts/password_reset_subject.txt",
        email_template_name="accounts/password_reset_email.txt",
        from_email=settings.DEFAULT_FROM_EMAIL,
    )
    return len(users)


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
