"""In Chromium: a fragment published to a public market group changes nothing outside the page's
hx-disable live slots. htmx's ws extension would swap any top-level element of a message out of
band (to any "#id", or "beforeend:body"); static/js/portal.js drops such swaps for sockets
marked data-public-feed."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.market.store import OVERVIEW_CHANNEL
from apps.orgs.models import Membership
from tests.market.test_browser import _in_thread, _signed_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

HOSTILE = [
    # Appended to the page's body, outside every live slot.
    (
        "evil-body",
        '<div id="evil-body" hx-swap-oob="beforeend:body"><p id="injected" data-evil>'
        "Your session expired: sign in again at https://evil.example</p></div>",
    ),
    # Replaces the connection badge (outside the live slots) by its id.
    ("market-conn", '<span id="market-conn" data-evil>Pwned</span>'),
    # Replaces the live slots themselves, dropping their hx-disable.
    (
        "evil-slot",
        '<div id="evil-slot" hx-swap-oob="outerHTML:.live-slot">'
        '<a data-evil hx-get="/accounts/logout/" hx-trigger="load">x</a></div>',
    ),
]


def _publish(parts: list[tuple[str, str]]) -> None:
    def send() -> None:
        async_to_sync(get_channel_layer().group_send)(
            OVERVIEW_CHANNEL, {"type": "fragments", "parts": parts}
        )

    _in_thread(send)


def _pulse(marker: str) -> tuple[str, str]:
    """The feed pulse, a public fragment like the feeder's, into its hidden live slot."""
    html = (
        f'<span id="market-feed" hidden data-age-ms="0" data-down="{marker}" '
        'hx-swap-oob="true"></span>'
    )
    return ("market-feed", html)


def test_a_public_fragment_swaps_nothing_outside_the_live_slots(
    page: Any, portal_server: Any, viewer: Membership
) -> None:
    _signed_in(page, viewer, portal_server.url)
    page.goto("/o/acme/markets/")
    slots = page.locator("[data-public-feed] [hx-disable]").count()
    assert slots > 0

    # Every message the socket has swapped, as the page saw it.
    page.evaluate(
        "window.swapped = [];"
        "document.addEventListener('htmx:wsAfterMessage',"
        " (event) => window.swapped.push(String(event.detail.message)))"
    )
    # Publish until the socket has joined the group and swapped one of the messages.
    for attempt in range(30):
        marker = f"probe-{attempt}"
        _publish([*HOSTILE, _pulse(marker)])
        try:
            page.wait_for_function(
                "(m) => window.swapped.some((message) => message.includes(m))",
                arg=marker,
                timeout=1_000,
            )
            break
        except Exception:  # noqa: S112 - the socket may not have joined yet; publish again
            continue
    else:
        pytest.fail("the socket never received a published fragment")

    # Nothing outside the live slots changed...
    assert page.locator("[data-evil]").count() == 0
    assert page.locator("#injected").count() == 0
    # The badge is still the page's own (market.js sets its text), not the fragment's.
    assert page.locator("#market-conn").inner_text() != "Pwned"
    assert page.locator("[data-public-feed] [hx-disable]").count() == slots
    # ...while the real fragment went into its live slot.
    assert page.locator("#market-feed").get_attribute("data-down") == marker
