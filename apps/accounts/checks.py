"""System check: no second factor is kept in django-otp's plaintext tables.

The portal seals authenticator keys and hashes recovery codes in its own models
(apps.accounts.models). django-otp's TOTP and static plugins stay installed only so migration
0004 can convert their rows; but django-otp's ``devices_for_user`` and ``Device.
from_persistent_id`` honour every installed device model, so one row in ``otp_totp_totpdevice``
or ``otp_static_staticdevice`` (a script, a fixture, an old admin) is a working second factor
whose secret sits in the database in the clear. Once 0004 has run, those tables must stay empty.

A database check (``Tags.database``): it runs with ``migrate`` and ``check --database default``,
not on every ``manage.py`` command. Before 0004 has run the rows are the ones it will convert,
so the check is silent there (and ``migrate`` can proceed to convert them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

CONVERSION = ("accounts", "0004_second_factor_secrets_at_rest")
PLAINTEXT_DEVICES = (
    "django-otp's plaintext device tables hold {totp} authenticator and {static} recovery-code "
    "device(s); django-otp would accept them as second factors."
)
PLAINTEXT_DEVICES_HINT = (
    "Create second factors with apps.accounts.services.totp_device_create and "
    "recovery_codes_set; delete the rows in otp_totp_totpdevice and otp_static_staticdevice "
    "(their owners enrol again)."
)


def _plaintext_device_counts(alias: str) -> tuple[int, int] | None:
    """(TOTP, static) rows in django-otp's tables, or None when the check does not apply yet."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    try:
        if CONVERSION not in MigrationRecorder(connections[alias]).applied_migrations():
            return None
        return (
            TOTPDevice.objects.using(alias).count(),
            StaticDevice.objects.using(alias).count(),
        )
    except DatabaseError:
        return None  # No database yet (or unreachable): nothing to look at.


@register(Tags.database)
def plaintext_otp_devices_check(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    found: list[CheckMessage] = []
    for alias in databases or ():
        counts = _plaintext_device_counts(alias)
        if counts is not None and any(counts):
            totp, static = counts
            found.append(
                Error(
                    PLAINTEXT_DEVICES.format(totp=totp, static=static),
                    hint=PLAINTEXT_DEVICES_HINT,
                    id="accounts.E001",
                )
            )
    return found
