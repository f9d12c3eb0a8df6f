from __future__ import annotations

import base64
import datetime
import enum
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django_otp.models import Device, TimestampMixin, VerifyNotAllowed
from django_otp.oath import TOTP

from apps.core.emails import email_normalize


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=email_normalize(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


# django-otp's Device is untyped: django-stubs cannot see the reverse managers it adds.
class User(AbstractUser):  # type: ignore[django-manager-missing]
    """A person. Signs in by email; belongs to organizations through memberships."""

    username = None  # type: ignore[assignment]
    email = models.EmailField(unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    theme = models.CharField(
        max_length=8, choices=[("dark", "Dark"), ("light", "Light")], default="dark"
    )
    # The organization the user last worked in; the switcher changes it.
    current_org = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.email


# Second factors. The portal owns its device models (instead of django-otp's TOTPDevice and
# StaticDevice) because django-otp stores the TOTP key as plain hex and static tokens as plain
# text, and both plugins' verify_token read those columns directly: a subclass or proxy storing
# ciphertext there would still be found and "verified" by django-otp's generic code paths (its
# admin, `devices_for_user`) against the wrong bytes. Our models are django-otp Devices, so
# OTPMiddleware, `django_otp.login`, `verify_token(user, persistent_id, token)` and the admin's
# OTP form work unchanged, and they keep django-otp's contract: `verify_is_allowed()` reports the
# throttle and `verify_token()` consumes a token at most once, under a row lock.


class SecondFactorThrottle(models.Model):
    """Wrong second-factor codes, counted per user (not per device, not per session).

    One counter for the authenticator and the recovery codes together, so alternating between
    them does not double the guesses, and a new session (signing in with the password again)
    does not reset it. Each wrong code doubles the wait before the next attempt is looked at
    (django-otp's exponential back-off), up to TWO_FACTOR_THROTTLE_MAX_DELAY; a right code
    resets it.
    """

    user = models.OneToOneField(
        User, primary_key=True, on_delete=models.CASCADE, related_name="second_factor_throttle"
    )
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.failures} wrong code(s) for user {self.user_id}"

    def locked_until(self) -> datetime.datetime | None:
        """When the next attempt may be checked, if that is still in the future."""
        if self.failures <= 0 or self.last_failure_at is None:
            return None
        factor = float(getattr(settings, "TWO_FACTOR_THROTTLE_FACTOR", 1))
        cap = float(getattr(settings, "TWO_FACTOR_THROTTLE_MAX_DELAY", 15 * 60))
        if factor <= 0:
            return None
        delay = min(factor * 2 ** min(self.failures - 1, 40), cap)
        until = self.last_failure_at + datetime.timedelta(seconds=delay)
        return until if until > timezone.now() else None


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    THROTTLED = "throttled"


def _throttle_lock(user_id: int) -> SecondFactorThrottle:
    """The user's counter, created if missing, locked until the transaction ends."""
    # INSERT ... ON CONFLICT DO NOTHING: two first attempts at once must not collide.
    SecondFactorThrottle.objects.bulk_create(
        [SecondFactorThrottle(user_id=user_id)], ignore_conflicts=True
    )
    return SecondFactorThrottle.objects.select_for_update().get(user_id=user_id)


def throttle_get(*, user_id: int) -> SecondFactorThrottle | None:
    throttle: SecondFactorThrottle | None = SecondFactorThrottle.objects.filter(
        user_id=user_id
    ).first()
    return throttle


def throttle_locked_until(*, user_id: int) -> datetime.datetime | None:
    throttle = throttle_get(user_id=user_id)
    return throttle.locked_until() if throttle is not None else None


class _PortalDevice(TimestampMixin, Device):
    """A django-otp device whose throttle is the user's and whose tokens are consumed once."""

    class Meta(Device.Meta):
        abstract = True

    def verify_is_allowed(self) -> tuple[bool, dict[str, Any] | None]:
        """django-otp's answer format, so its own forms (the admin's) word the wait right."""
        throttle = throttle_get(user_id=self.user_id)
        until = throttle.locked_until() if throttle is not None else None
        if throttle is None or until is None:
            return True, None
        return False, {
            "reason": VerifyNotAllowed.N_FAILED_ATTEMPTS,
            "failure_count": throttle.failures,
            "locked_until": until,
        }

    def verify_token(self, token: Any) -> bool:
        return self.verify(str(token)) is Verdict.ACCEPTED

    def verify(self, token: str) -> Verdict:
        """Check and consume `token`, serialised per user: the device row and then the user's
        counter are locked (always in this order, so two devices of one user cannot deadlock),
        the throttle is read under the lock, and the token is consumed with a conditional UPDATE
        whose row count decides, so parallel requests with one code get one success."""
        with transaction.atomic():
            locked = type(self).objects.select_for_update().filter(pk=self.pk)
            if not list(locked.values_list("pk", flat=True)):  # removed meanwhile
                return Verdict.WRONG
            throttle = _throttle_lock(self.user_id)
            if throttle.locked_until() is not None:
                return Verdict.THROTTLED
            now = timezone.now()
            if self._consume(token, now=now):
                SecondFactorThrottle.objects.filter(user_id=self.user_id).update(
                    failures=0, last_failure_at=None
                )
                type(self).objects.filter(pk=self.pk).update(last_used_at=now)
                self.last_used_at = now
                return Verdict.ACCEPTED
            SecondFactorThrottle.objects.filter(user_id=self.user_id).update(
                failures=F("failures") + 1, last_failure_at=now
            )
            return Verdict.WRONG

    def _consume(self, token: str, *, now: datetime.datetime) -> bool:
        raise NotImplementedError


class EncryptedTOTPDevice(_PortalDevice):
    """An authenticator app. Its key is stored only sealed (apps.accounts.sealing), bound to
    this row and its user. Until confirmed, the device belongs to the session that started the
    enrolment (`enrolment_session`, a hash of that session's key)."""

    kek_id = models.CharField(max_length=32, blank=True)
    key_ciphertext = models.BinaryField(blank=True)
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    # The time step of the last accepted code; only later steps are accepted (no replay).
    last_t = models.BigIntegerField(default=-1)
    enrolment_session = models.CharField(max_length=64, blank=True)

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    def __repr__(self) -> str:  # Never the key, not even sealed.
        return f"<EncryptedTOTPDevice {self.pk} user={self.user_id}>"

    @property
    def bin_key(self) -> bytes:
        from apps.accounts.sealing import totp_key_open

        return totp_key_open(
            device_id=self.pk,
            user_id=self.user_id,
            kek_id=self.kek_id,
            ciphertext=bytes(self.key_ciphertext),
        )

    @property
    def config_url(self) -> str:
        """The otpauth:// URL an authenticator app scans (Google's Key Uri Format)."""
        issuer = str(getattr(settings, "OTP_TOTP_ISSUER", "") or "").replace(":", "")
        label = self.user.get_username()
        params = {
            "secret": base64.b32encode(self.bin_key).decode(),
            "algorithm": "SHA1",
            "digits": self.digits,
            "period": self.step,
        }
        if issuer:
            label = f"{issuer}:{label}"
            params["issuer"] = issuer
        return f"otpauth://totp/{quote(label)}?{urlencode(params, quote_via=quote)}"

    def _consume(self, token: str, *, now: datetime.datetime) -> bool:
        if not (token.isdigit() and len(token) == self.digits):
            return False
        current = type(self).objects.get(pk=self.pk)  # read under the row lock
        totp = TOTP(current.bin_key, current.step, current.t0, current.digits, current.drift)
        totp.time = now.timestamp()
        if not totp.verify(int(token), current.tolerance, current.last_t + 1):
            return False
        step = totp.t()
        drift = totp.drift if getattr(settings, "OTP_TOTP_SYNC", True) else current.drift
        claimed = (
            type(self).objects.filter(pk=self.pk, last_t__lt=step).update(last_t=step, drift=drift)
        )
        if claimed != 1:
            return False
        self.last_t, self.drift = step, drift
        return True


class RecoveryCodeDevice(_PortalDevice):
    """The user's one-time recovery codes (RecoveryCode rows, stored as keyed hashes)."""

    class Meta(Device.Meta):
        verbose_name = "recovery codes"

    def _consume(self, token: str, *, now: datetime.datetime) -> bool:
        from apps.accounts.sealing import recovery_code_digest

        unused = RecoveryCode.objects.filter(device=self, used_at__isnull=True)
        for kek_id in unused.values_list("kek_id", flat=True).distinct().order_by():
            digest = recovery_code_digest(user_id=self.user_id, code=token, kek_id=kek_id)
            if unused.filter(kek_id=kek_id, digest=digest).update(used_at=now) == 1:
                return True
        return False


class RecoveryCode(models.Model):
    """One recovery code, as HMAC-SHA256 under a keyring-derived key (apps.accounts.sealing).
    A used code keeps its row with `used_at` set, so the count of codes left is exact."""

    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    kek_id = models.CharField(max_length=32)
    digest = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "digest"], name="recovery_code_unique")
        ]

    def __str__(self) -> str:
        return f"Recovery code {self.pk}" + (" (used)" if self.used_at else "")

    def __repr__(self) -> str:
        return f"<RecoveryCode {self.pk} device={self.device_id}>"
