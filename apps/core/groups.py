"""Channel-layer group names, built in one place so no consumer invents its own.

Who may join which group is a security decision made by selectors; these only spell names.
"""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _clean(value: str) -> str:
    # Group names allow ASCII letters, digits, hyphens, underscores and periods only.
    return _SAFE.sub("_", value)


# Groups that span organizations carry control messages only (closing sockets), never data:
# apps.core.realtime.publish_on_commit refuses anything else. Private data goes to
# member_group, which is per organization.
CONTROL_ONLY_PREFIXES = ("user.", "session.")


def user_group(user_id: int) -> str:
    """Every socket of one person, across organizations: control only (2FA removed closes
    them all). Never data: a socket in one organization must not receive another's events."""
    return f"user.{user_id}"


def member_group(org_id: int, user_id: int) -> str:
    """Every socket a member has open in one organization: their private events (orders,
    balances), and removal or a role change closes them all."""
    return f"member.{org_id}.{user_id}"


def session_group(session_key: str) -> str:
    """Every socket opened with one sign-in session: signing out closes them all. The key is
    hashed because it is a bearer secret and group names are visible in Redis."""
    return f"session.{hashlib.sha256(session_key.encode()).hexdigest()[:40]}"


def org_group(org_id: int) -> str:
    """Events every member of an organization may see."""
    return f"org.{org_id}"


def symbol_group(symbol: str) -> str:
    """Public market data of one pair, e.g. `market.BTC_USD`."""
    return f"market.{_clean(symbol)}"
