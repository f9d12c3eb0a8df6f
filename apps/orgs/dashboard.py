"""The organization's home page is built from panels that the apps above orgs provide.

The dashboard view lives here (it is the organization's page), but what a member needs to see
on it comes from higher layers: their keys (vault), the markets and the feed (market), recent
activity (audit), later trading, treasury and approvals. Those register a provider here, from
the composition layer (kraken_portal.dashboard), so orgs never imports upward.

A provider takes the request and the membership and returns a panel, or None to show nothing.
"Needs you now" items are collected the same way, from every attention provider, into one
panel at the top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from apps.orgs.models import Membership


@dataclass(frozen=True)
class DashboardPanel:
    template: str  # rendered with `panel` = this panel
    title: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Attention:
    """One thing waiting for this member, as a sentence and where to act on it."""

    text: str
    url: str
    action: str  # the link's label, e.g. "Review"
    level: str = "info"  # "info" or "warn"


type PanelProvider = Callable[[HttpRequest, Membership], DashboardPanel | None]
type AttentionProvider = Callable[[HttpRequest, Membership], list[Attention]]

_panels: list[tuple[int, PanelProvider]] = []
_attention: list[AttentionProvider] = []


def dashboard_panel_register(provider: PanelProvider, *, order: int) -> None:
    """Add a panel (lower `order` first); registering the same provider twice keeps one."""
    if all(existing is not provider for _, existing in _panels):
        _panels.append((order, provider))
        _panels.sort(key=lambda item: item[0])


def dashboard_attention_register(provider: AttentionProvider) -> None:
    if provider not in _attention:
        _attention.append(provider)


def dashboard_attention(request: HttpRequest, membership: Membership) -> list[Attention]:
    items = [item for provider in _attention for item in provider(request, membership)]
    return sorted(items, key=lambda item: item.level != "warn")  # warnings first, stable


def dashboard_panels(request: HttpRequest, membership: Membership) -> list[DashboardPanel]:
    return [
        panel for _, provider in _panels if (panel := provider(request, membership)) is not None
    ]
