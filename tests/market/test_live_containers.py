"""Every element the market socket swaps a public fragment into sits inside an hx-disable
container, so nothing in a fragment can make htmx send a request; the socket itself and the
page's own controls (the watch buttons) stay live."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from django.test import Client

from apps.market.feeder.publisher import EXCHANGE_ELEMENT, FEED_ELEMENT, SYMBOL_PARTS
from apps.orgs.models import Membership

pytestmark = pytest.mark.django_db

# The ids the publisher's fragments replace: the feed pulse, Kraken's system status banner, the
# overview's tiles and table rows and the pair page's parts (apps.market.feeder.publisher names
# them).
LIVE_IDS = {FEED_ELEMENT, EXCHANGE_ELEMENT}
LIVE_PREFIXES = ("tile-", "row-", *(f"{part}-" for part in SYMBOL_PARTS))
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    disabled_above: bool  # an ancestor carries hx-disable


@dataclass
class Page(HTMLParser):
    elements: list[Element] = field(default_factory=list)
    _stack: list[tuple[str, bool]] = field(default_factory=list)  # (tag, hx-disable in scope)

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        above = bool(self._stack) and self._stack[-1][1]
        found = dict(attrs)
        self.elements.append(Element(tag, found, above))
        if tag not in VOID:
            self._stack.append((tag, above or "hx-disable" in found))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, -1, -1):
            if self._stack[depth][0] == tag:
                del self._stack[depth:]
                return


def parse(html: str) -> list[Element]:
    page = Page()
    page.feed(html)
    return page.elements


def live_targets(elements: list[Element]) -> list[Element]:
    return [
        e
        for e in elements
        if (e.attrs.get("id") or "") in LIVE_IDS
        or (e.attrs.get("id") or "").startswith(LIVE_PREFIXES)
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "/o/acme/markets/",
            {*LIVE_IDS, "tile-BTC-USD", "tile-ETH-USD", "row-BTC-USD", "row-ETH-USD"},
        ),
        (
            "/o/acme/markets/BTC-USD/",
            {*LIVE_IDS, *(f"{part}-BTC-USD" for part in SYMBOL_PARTS)},
        ),
    ],
)
def test_every_container_of_a_public_fragment_carries_hx_disable(
    client_for: Callable[[Membership], Client],
    viewer: Membership,
    market_data: None,
    url: str,
    expected: set[str],
) -> None:
    response = client_for(viewer).get(url)
    assert response.status_code == 200
    elements = parse(response.content.decode())
    targets = live_targets(elements)
    assert {e.attrs["id"] for e in targets} == expected
    for target in targets:
        # The container, not the fragment: a swapped-in fragment replaces its own attributes.
        assert target.disabled_above, target.attrs["id"]
    # The market's socket (the header has its own, for the member's private parts).
    (socket,) = [e for e in elements if "ws-connect" in e.attrs and "data-market-live" in e.attrs]
    assert not socket.disabled_above
    assert "hx-disable" not in socket.attrs
    controls = [e for e in elements if "hx-post" in e.attrs]
    assert controls  # the watch button
    assert not any(control.disabled_above for control in controls)
