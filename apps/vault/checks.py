"""System check: a malformed PORTAL_KEYRING stops the portal at start-up, not at first use.

An empty keyring is allowed (development, tests): the vault then refuses, with a clear message,
any work that needs a secret.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from apps.vault import crypto


@register()
def keyring_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        crypto.keyring()
    except crypto.VaultUnavailable:
        return []
    except crypto.VaultKeyError as error:
        return [Error(str(error), id="vault.E001")]
    return []
