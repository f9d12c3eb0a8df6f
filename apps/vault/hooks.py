"""Hooks the vault offers to the layers above it, filled in their AppConfig.ready().

- The key check: asking Kraken which permissions a key has is exchange's (only apps/exchange
  calls Kraken's private methods). The vault marks a key's check pending and, after commit, asks
  the registered enqueuer to run it; exchange registers one that sends its task
  (apps.exchange.tasks.credential_check_task). So the vault imports nothing of exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

type KeyCheckEnqueuer = Callable[[int], None]

_key_check: KeyCheckEnqueuer | None = None


def key_check_register(enqueue: KeyCheckEnqueuer) -> None:
    """Called once, by exchange's ready(); a second registration replaces the first."""
    global _key_check
    _key_check = enqueue


def key_check_enqueue(credential_id: int) -> None:
    """Ask for the check of a key whose probe is pending. Without a registered enqueuer (a
    deployment without apps.exchange) the key stays "pending", never unchecked-but-usable:
    a trade or funding decrypt is refused until its permissions were checked."""
    if _key_check is None:
        logger.warning(
            "vault: no key check is registered; credential %s stays pending", credential_id
        )
        return
    _key_check(credential_id)
