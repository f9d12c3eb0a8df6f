"""The registry of notification kinds. The apps that raise notifications register their kinds in
their AppConfig.ready(), so this app knows every kind (for the preferences page) without
importing the apps above it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NotificationKind:
    key: str  # "approvals.needed": the app's label, a dot, the event
    label: str  # what the preferences page shows
    default_email: bool  # whether a member who has not chosen gets an email
    # Security notices (a loosening waiting out its delay) are emailed whatever the choice.
    email_required: bool = False


_kinds: dict[str, NotificationKind] = {}


def notification_kind_register(
    key: str, label: str, *, default_email: bool, email_required: bool = False
) -> NotificationKind:
    """Register a kind once; registering the same key again replaces it (ready() may run twice
    in tests)."""
    kind = NotificationKind(
        key=key,
        label=label,
        default_email=default_email or email_required,
        email_required=email_required,
    )
    _kinds[key] = kind
    return kind


def notification_kind_get(key: str) -> NotificationKind:
    try:
        return _kinds[key]
    except KeyError:
        raise LookupError(f"Unknown notification kind {key!r}: register it first.") from None


def notification_kinds() -> list[NotificationKind]:
    return sorted(_kinds.values(), key=lambda kind: kind.key)
