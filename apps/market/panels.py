"""Panels other apps add to a market pair page (the desk's order ticket), registered in their
AppConfig.ready(), so the market app shows them without importing the apps above it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest
from django.utils.safestring import SafeString, mark_safe

from apps.orgs.models import Membership

logger = logging.getLogger(__name__)

# (request, membership, symbol) -> rendered HTML (the panel checks the member's role itself).
PairPanel = Callable[[HttpRequest, Membership, str], str]

_panels: dict[str, PairPanel] = {}


def pair_panel_register(name: str, render: PairPanel) -> None:
    """Add (or replace, ready() may run twice in tests) a panel shown on every pair page."""
    _panels[name] = render


def pair_panels(request: HttpRequest, membership: Membership, symbol: str) -> list[SafeString]:
    """Every registered panel for `symbol`, rendered; a panel that fails is left out (logged),
    so the market page never breaks because of another app."""
    rendered = []
    for name, render in sorted(_panels.items()):
        try:
            html = render(request, membership, symbol)
        except Exception:
            logger.exception("market: pair panel %s failed for %s", name, symbol)
            continue
        # The registered renderers return template output (escaped by the template engine).
        rendered.append(mark_safe(html))  # noqa: S308
    return rendered
