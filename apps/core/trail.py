"""The audit port: every layer records what it changed through `audit_record`, and the audit app
(apps.audit, a layer above accounts and orgs) registers the recorder that writes the hash-chained
trail, in AuditConfig.ready(). So accounts and orgs audit their changes without importing upward.

The record is written synchronously, inside the caller's transaction: if it fails, the change
does not commit either. With no recorder registered the port raises instead of dropping the
event, so an unaudited change cannot commit silently.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.http import HttpRequest

NO_RECORDER = (
    "No audit recorder is registered (apps.audit registers it in AuditConfig.ready()): "
    "refusing to make a change that would go unaudited."
)


class Member(Protocol):
    """A membership: the audited person is its user; its organization's chain is the default."""

    @property
    def user(self) -> AbstractBaseUser: ...

    @property
    def org(self) -> models.Model: ...


# Who made the change: a user, a membership (its user is recorded), or nobody (the system, or
# an anonymous applicant).
Actor = AbstractBaseUser | Member | None


class AuditRecorder(Protocol):
    def __call__(
        self,
        *,
        action: str,
        actor: Actor = None,
        org: models.Model | None = None,
        target: models.Model | None = None,
        detail: dict[str, Any] | None = None,
        request: HttpRequest | None = None,
        ip: str | None = None,
        user_agent: str = "",
    ) -> models.Model: ...


class ThrottledAuditRecorder(Protocol):
    def __call__(
        self,
        *,
        action: str,
        source: str | None = None,
        window: int = ...,
        actor: Actor = None,
        org: models.Model | None = None,
        target: models.Model | None = None,
        detail: dict[str, Any] | None = None,
        request: HttpRequest | None = None,
    ) -> models.Model | None: ...


_recorder: AuditRecorder | None = None
_throttled_recorder: ThrottledAuditRecorder | None = None


def audit_recorder_register(
    recorder: AuditRecorder, *, throttled: ThrottledAuditRecorder | None = None
) -> None:
    """Called once, by the audit app's ready(); a second registration replaces the first."""
    global _recorder, _throttled_recorder
    _recorder = recorder
    _throttled_recorder = throttled


def audit_record(
    *,
    action: str,
    actor: Actor = None,
    org: models.Model | None = None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    ip: str | None = None,
    user_agent: str = "",
) -> models.Model:
    """Append one record to the organization's chain (the global chain when there is none).
    Call it inside the change's transaction. `org` defaults to a membership actor's."""
    if _recorder is None:
        raise ImproperlyConfigured(NO_RECORDER)
    return _recorder(
        action=action,
        actor=actor,
        org=org,
        target=target,
        detail=detail,
        request=request,
        ip=ip,
        user_agent=user_agent,
    )


def audit_record_throttled(
    *,
    action: str,
    source: str | None = None,
    window: int = 60,
    actor: Actor = None,
    org: models.Model | None = None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> models.Model | None:
    """`audit_record` for events anyone can trigger as fast as they send requests (a failed
    sign-in, an onboarding application): at most once per `window` seconds per `source`
    (default: the client's address), the next record counting what was left out
    (apps/audit/throttle.py). Returns None when the event was only counted."""
    if _throttled_recorder is None:
        raise ImproperlyConfigured(NO_RECORDER)
    return _throttled_recorder(
        action=action,
        source=source,
        window=window,
        actor=actor,
        org=org,
        target=target,
        detail=detail,
        request=request,
    )
