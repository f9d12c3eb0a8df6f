"""API-Sign through the portal's client path, checked against Kraken's official example."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from apps.kraken.client import PortalSpotClient, wire_params

# FACTS §1.2 (docs.kraken.com "spot-rest-auth"), recomputed offline.
SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
NONCE = 1616492376594
PAYLOAD = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
API_SIGN = (
    "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
)


def _client() -> PortalSpotClient:
    return PortalSpotClient(
        api_key="public-key",
        secret=SECRET,
        url="http://127.0.0.1:9",
        timeout=5,
        nonce_source=lambda: NONCE,
    )


def test_the_sdk_signature_reproduces_the_official_example() -> None:
    assert _client().sign("/0/private/AddOrder", PAYLOAD, NONCE) == API_SIGN


def test_a_prepared_add_order_request_carries_the_official_body_and_signature() -> None:
    params = wire_params(
        {
            "ordertype": "limit",
            "pair": "XBTUSD",
            "price": Decimal("37500"),
            "type": "buy",
            "volume": Decimal("1.250"),
        },
        as_json=False,
    )
    method, url, headers, body, _ = _client()._prepare_request(
        method="POST", uri="/0/private/AddOrder", params=params
    )
    assert method == "POST"
    assert url == "http://127.0.0.1:9/0/private/AddOrder"
    assert urlencode(body) == PAYLOAD
    assert headers["API-Key"] == "public-key"
    assert headers["API-Sign"] == API_SIGN


def test_the_client_repr_never_shows_the_secret() -> None:
    assert SECRET not in repr(_client())
