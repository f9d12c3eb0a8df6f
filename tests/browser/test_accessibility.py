"""In Chromium: axe-core (vendored) on every page each demo role can reach by following links.

For each role (and a staff member, and a visitor who is not signed in) the test starts where
that person lands and follows every same-site link, once per path, checking each page with
axe-core. Serious and critical violations fail the test; the whole report (every impact) is
saved to var/axe-report.json and a summary is printed and saved to var/axe-summary.txt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from tests.browser import reachable
from tests.conftest import verified_client
from tests.factories import UserFactory
from tests.market.conftest import clear_market_keys, feeder_subprocess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
AXE = "/static/vendor/axe-core/axe.min.js"
FAILING_IMPACTS = {"serious", "critical"}
MAX_PAGES_PER_PERSON = 40
# Links that end the session or leave the portal's own pages.
SKIPPED_PREFIXES = ("/static/", "/staff/admin/", "/accounts/logout/")


@pytest.fixture
def live_markets(sandbox: Any) -> Iterator[None]:
    clear_market_keys()
    try:
        with feeder_subprocess(sandbox, ["BTC/USD", "ETH/USD"]):
            yield
    finally:
        clear_market_keys()


def _same_site_paths(page: Any) -> list[str]:
    hrefs: list[str] = page.evaluate(
        "() => Array.from(document.querySelectorAll('a[href]:not([download])')).map(a => a.href)"
    )
    origin = urlsplit(page.url)
    paths = []
    for href in hrefs:
        parts = urlsplit(href)
        if parts.netloc != origin.netloc or parts.scheme not in {"http", "https"}:
            continue
        if parts.path.startswith(SKIPPED_PREFIXES) or "." in parts.path.rsplit("/", 1)[-1]:
            continue  # a file (CSV export), not a page
        paths.append(parts.path)  # query variants (sort, interval) render the same template
    return paths


def _axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(url=AXE)
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def _crawl(page: Any, start: str, person: str, report: dict[str, Any]) -> None:
    queue, seen = [start], {start}
    while queue and len(seen) <= MAX_PAGES_PER_PERSON:
        path = queue.pop(0)
        response = page.goto(path)
        status = response.status if response else 0
        page.wait_for_load_state("load")
        landed = urlsplit(page.url).path
        violations = _axe(page)
        report.setdefault(person, []).append(
            {
                "path": path,
                "landed": landed,
                "status": status,
                "violations": [
                    {
                        "id": v["id"],
                        "impact": v["impact"],
                        "help": v["help"],
                        "targets": [" ".join(map(str, n["target"])) for n in v["nodes"]][:5],
                        "nodes": len(v["nodes"]),
                    }
                    for v in violations
                ],
            }
        )
        for found in _same_site_paths(page):
            if found not in seen:
                seen.add(found)
                queue.append(found)


def _sign_in(page: Any, user: Any, server_url: str) -> None:
    client = verified_client(user)
    page.context.clear_cookies()
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server_url}]
    )


def test_no_page_any_demo_role_reaches_has_a_serious_accessibility_violation(
    page: Any, portal_server: Any, org: Any, live_markets: None
) -> None:
    from tests.factories import MembershipFactory

    report: dict[str, Any] = {}
    _crawl(page, "/accounts/login/", "visitor", report)
    for role in Role.values:
        member: Any = MembershipFactory(
            org=org, role=role, user=UserFactory(email=f"{role}@acme.test")
        )
        # Pages that only exist, or only fill up, with data: key pages, details on the trail
        # and the home page, the person's security activity.
        if role in (Role.OWNER, Role.TRADER):
            reachable.keys(member)
        reachable.security_events(member.user)
        _sign_in(page, member.user, portal_server.url)
        _crawl(page, "/", role, report)
    staff = UserFactory(email="staff@portal.test", is_staff=True)
    reachable.applications_to_review(staff)  # the review pages and the approval confirmation
    _sign_in(page, staff, portal_server.url)
    _crawl(page, "/", "staff", report)

    failures = [
        f"{person} {entry['path']}: {v['impact']} {v['id']} ({v['help']}) at {v['targets']}"
        for person, entries in report.items()
        for entry in entries
        for v in entry["violations"]
        if v["impact"] in FAILING_IMPACTS
    ]
    counts: dict[str, int] = {}
    for entries in report.values():
        for entry in entries:
            for v in entry["violations"]:
                counts[v["impact"]] = counts.get(v["impact"], 0) + v["nodes"]
    pages = sum(len(entries) for entries in report.values())
    summary = [
        f"axe-core: {pages} page visits by {len(report)} people "
        f"({', '.join(f'{p} {len(e)}' for p, e in report.items())})",
        "elements with violations by impact: "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"),
        *failures,
    ]
    var = REPO / "var"
    var.mkdir(exist_ok=True)
    (var / "axe-report.json").write_text(json.dumps(report, indent=2))
    (var / "axe-summary.txt").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    assert pages > 20, summary  # the crawl really walked the portal
    visited = {entry["path"] for entries in report.values() for entry in entries}
    for page_with_data in (
        r"/o/acme/vault/\d+/",  # API key pages (live, refused, revoked)
        r"/accounts/activity/",
        r"/onboarding/review/\d+/",
        r"/onboarding/review/\d+/approve/",
    ):
        assert any(re.fullmatch(page_with_data, path) for path in visited), page_with_data
    assert failures == [], "\n".join(failures)


def test_the_first_tab_reaches_a_visible_skip_link_to_the_content(
    page: Any, portal_server: Any, viewer: Membership
) -> None:
    _sign_in(page, viewer.user, portal_server.url)
    page.goto("/o/acme/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    box = skip.bounding_box()
    assert box is not None
    assert box["y"] >= 0  # moved into view when focused
    # The focus ring is drawn (an outline), not left to the browser's default or removed.
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "content"
