"""The browser-test server is the real ASGI app: static files, security headers, WebSockets."""

from __future__ import annotations

import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from apps.orgs.models import Membership
from tests.conftest import verified_client
from tests.plugins.browser import PortalServer

pytestmark = pytest.mark.browser


def test_it_serves_static_files_with_the_strict_csp(portal_server: PortalServer) -> None:
    with urllib.request.urlopen(portal_server.url + "/static/css/portal.css") as response:  # noqa: S310
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/css")
    with urllib.request.urlopen(portal_server.url + "/accounts/login/") as response:  # noqa: S310
        assert "script-src 'self' 'nonce-" in response.headers["Content-Security-Policy"]


def test_websockets_reach_channels_which_refuses_a_foreign_origin(
    portal_server: PortalServer,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(
            portal_server.ws_url + "/ws/anything/",
            origin=Origin("http://evil.example"),
            open_timeout=5,
        )
    assert refused.value.response.status_code == 403


def test_market_sockets_are_not_compressed_even_when_the_browser_offers_it(
    portal_server: PortalServer, viewer: Membership
) -> None:
    # Private events will share these sockets with text others can influence: compressing both
    # in one stream is how BREACH-style attacks read secrets (kraken_portal/serve.py).
    cookie = verified_client(viewer.user).cookies["sessionid"].value
    with connect(
        portal_server.ws_url + f"/ws/o/{viewer.org.slug}/markets/",
        origin=Origin(portal_server.url),
        additional_headers={"Cookie": f"sessionid={cookie}"},
        compression="deflate",  # what every browser offers
    ) as socket:
        assert socket.response is not None
        assert "Sec-WebSocket-Extensions" not in socket.response.headers
        assert socket.protocol.extensions == []
