"""In Chromium at 390 px (a phone): the header folds into a menu, no page is wider than the
screen, and no form control is clipped, checked by script on every page an owner reaches."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from apps.market.models import MarketPreference
from apps.orgs.models import Membership
from tests.browser import reachable
from tests.browser.test_accessibility import _same_site_paths, _sign_in
from tests.factories import UserFactory
from tests.market.conftest import clear_market_keys, feeder_subprocess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
PHONE = {"width": 390, "height": 844}
# The desk, blotters, P&L, treasury, staking and schedules added pages: 40 no longer reached
# the account pages (sign-in activity) through the breadth-first crawl.
MAX_PAGES = 80

# Sideways overflow of the page, and any visible control that does not fit on the screen. A link
# inside a panel that scrolls sideways (a wide table) is reachable by scrolling that panel; a
# form control (a button, a field, a select) must be whole on screen wherever it is.
OVERFLOW = """
() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  if (document.documentElement.scrollWidth > width)
    problems.push('page is ' + document.documentElement.scrollWidth + ' px wide');
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  for (const el of document.querySelectorAll('a[href], button, input, select, textarea')) {
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!r.width || !r.height || style.visibility === 'hidden') continue;
    if (el.closest('.visually-hidden')) continue;
    if (el.matches('.skip-link')) continue;  // off screen until focused, by design
    const outside = r.left < -1 || r.right > width + 1;
    if (outside && (el.tagName !== 'A' || !scrolls(el)))
      problems.push(el.tagName + ' "' + (el.textContent || el.name || '').trim().slice(0, 30)
                    + '" at ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
  return problems;
}
"""


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": PHONE, "locale": "en-GB", "is_mobile": True, "has_touch": True}


@pytest.fixture
def live_markets(sandbox: Any) -> Iterator[None]:
    clear_market_keys()
    try:
        with feeder_subprocess(sandbox, ["BTC/USD", "ETH/USD"]):
            yield
    finally:
        clear_market_keys()


def test_the_header_folds_into_a_menu_that_opens_and_closes(
    page: Any, portal_server: Any, owner: Membership
) -> None:
    _sign_in(page, owner.user, portal_server.url)
    page.goto("/o/acme/")
    menu = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Main")
    assert menu.is_visible()
    assert nav.is_hidden()
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    assert nav.is_visible()
    assert page.get_by_role("button", name="Sign out").is_visible()
    page.keyboard.press("Escape")
    assert nav.is_hidden()
    assert page.evaluate(OVERFLOW) == []


def _overflowing_pages(page: Any, start: str) -> tuple[dict[str, list[str]], set[str]]:
    """Every page reachable from `start` (up to MAX_PAGES) that is wider than the screen or clips a
    control, with what is wrong on each; and the paths visited."""
    problems: dict[str, list[str]] = {}
    queue, seen = [start], {start}
    while queue:
        path = queue.pop(0)
        page.goto(path)
        found = page.evaluate(OVERFLOW)
        if found:
            problems[path] = found
        for link in _same_site_paths(page):
            if link not in seen and len(seen) < MAX_PAGES:
                seen.add(link)
                queue.append(link)
    return problems, seen


def test_no_page_an_owner_reaches_overflows_a_phone_screen(
    page: Any,
    portal_server: Any,
    owner: Membership,
    viewer: Membership,
    trader: Membership,
    live_markets: None,
) -> None:
    # Keys, trail details and sign-in events, so their pages are crawled filled in.
    reachable.keys(owner)
    reachable.security_events(owner.user)
    _sign_in(page, owner.user, portal_server.url)
    problems, seen = _overflowing_pages(page, "/")
    assert len(seen) > 10, seen
    assert "/o/acme/members/" in seen
    assert "/accounts/activity/" in seen
    assert any(re.fullmatch(r"/o/acme/vault/\d+/", path) for path in seen), seen

    # The markets table view too (the crawl saw the tiles), and the members' controls.
    MarketPreference.objects.create(user=owner.user, layout="table")
    page.goto("/o/acme/markets/")
    if found := page.evaluate(OVERFLOW):
        problems["markets (table)"] = found
    page.goto("/o/acme/members/")
    for member in (viewer, trader):
        row = page.locator(f"#member-{member.pk}")
        for control in (row.get_by_role("combobox"), row.get_by_role("button", name="Change")):
            box = control.bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= PHONE["width"]
        remove = row.get_by_role("button", name="Remove")
        box = remove.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= PHONE["width"]
    assert problems == {}, problems
    assert urlsplit(page.url).path == "/o/acme/members/"


def test_no_page_staff_reach_overflows_a_phone_screen(page: Any, portal_server: Any) -> None:
    staff = UserFactory(email="staff@portal.test", is_staff=True)
    reachable.applications_to_review(staff)
    _sign_in(page, staff, portal_server.url)
    problems, seen = _overflowing_pages(page, "/")
    assert any(re.fullmatch(r"/onboarding/review/\d+/approve/", path) for path in seen), seen
    assert problems == {}, problems
