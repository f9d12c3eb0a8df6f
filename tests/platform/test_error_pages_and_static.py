"""With DEBUG off (as `make run` starts now): the portal's own 404 and 500 pages, and static
files served by WhiteNoise, hashed, compressed and cached for good, from the real ASGI app."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

from apps.market.store import PAIRS_KEY
from apps.orgs.models import Membership
from tests.conftest import verified_client

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def collected_var(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A var/ folder with `collectstatic` run into it, as `make run` does."""
    var = tmp_path_factory.mktemp("var")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.base",
        "PORTAL_VAR_DIR": str(var),
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )
    return var


@pytest.fixture
def portal_server_env(collected_var: Path) -> dict[str, str]:
    # The deployment's settings (not the test ones, which keep plain static names), debug off.
    return {
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.base",
        "PORTAL_VAR_DIR": str(collected_var),
    }


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """Status, headers (case-insensitive) and body of a GET to our own test server."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - our own server
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_an_unknown_address_shows_the_portals_own_404_page(portal_server: Any) -> None:
    status, _, body = _get(portal_server.url + "/no/such/page/")
    assert status == 404
    text = body.decode()
    assert "This page does not exist" in text
    assert "URLconf" not in text  # not Django's debug page


def test_a_server_error_shows_the_portals_own_500_page(
    portal_server: Any, viewer: Membership
) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.set(PAIRS_KEY, b"{not json")  # a corrupted market store: the overview cannot render
    try:
        cookie = verified_client(viewer.user).cookies["sessionid"].value
        status, _, body = _get(
            portal_server.url + "/o/acme/markets/", {"Cookie": f"sessionid={cookie}"}
        )
    finally:
        client.delete(PAIRS_KEY)
        client.close()
    assert status == 500
    text = body.decode()
    assert "Something went wrong on our side" in text
    assert "Traceback" not in text


def test_pages_name_hashed_static_files_that_are_served_compressed_and_cached(
    portal_server: Any,
) -> None:
    status, _, body = _get(portal_server.url + "/accounts/login/")
    assert status == 200
    stylesheet = re.search(rb'href="(/static/css/portal\.[0-9a-f]{12}\.css)"', body)
    assert stylesheet, body[:600]
    status, headers, payload = _get(
        portal_server.url + stylesheet.group(1).decode(), {"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert headers.get("Content-Encoding") == "gzip"
    assert b"--accent" in gzip.decompress(payload)
    assert "immutable" in headers.get("Cache-Control", "")
    # Every script a page names is there too (htmx, the portal's own).
    for script in re.findall(rb'src="(/static/[^"]+\.js)"', body):
        assert _get(portal_server.url + script.decode())[0] == 200, script
