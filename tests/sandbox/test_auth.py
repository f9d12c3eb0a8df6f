"""REST authentication: the documented API-Sign vector, error strings, nonce, lockout."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

from apps.sandbox.auth import sign
from tests.plugins.sandbox import SandboxProcess

DOC_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
DOC_NONCE = "1616492376594"
DOC_BODY = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
DOC_SIGN = (
    "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
)


def test_official_api_sign_example() -> None:
    assert sign("/0/private/AddOrder", DOC_BODY.encode(), DOC_NONCE, DOC_SECRET) == DOC_SIGN


def _raw(sb: SandboxProcess, method: str, body: str, headers: dict[str, str]) -> dict:
    req = urllib.request.Request(  # noqa: S310 - local test server
        f"{sb.url}/0/private/{method}", data=body.encode(), method="POST", headers=headers
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        assert resp.status == 200
        result: dict = json.loads(resp.read())
        return result


def test_doc_vector_accepted_by_server(sandbox: SandboxProcess) -> None:
    """The exact documented request (key + secret + nonce + body) passes the server check."""
    acct = sandbox.create_account({"USD": "100000"})
    key, _ = sandbox.create_key(acct, key="doc-vector-key", secret=DOC_SECRET)
    out = _raw(
        sandbox,
        "AddOrder",
        DOC_BODY,
        {"API-Key": key, "API-Sign": DOC_SIGN, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert out["error"] == []
    assert out["result"]["descr"]["order"] == "buy 1.25000000 XBTUSD @ limit 37500.0"


def test_json_body_signing(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "10"})
    key, secret = sandbox.create_key(acct)
    out = sandbox.private(key, secret, "Balance", as_json=True)
    assert out == {"error": [], "result": {"ZUSD": "10.0000"}}


def test_error_strings(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "10"})
    key, secret = sandbox.create_key(acct, permissions=["query_funds"])
    _, other_secret = sandbox.create_key(acct)
    assert sandbox.private(key, other_secret, "Balance") == {"error": ["EAPI:Invalid signature"]}
    assert sandbox.private("no-such-key", secret, "Balance") == {"error": ["EAPI:Invalid key"]}
    ok = sandbox.private(key, secret, "Balance", nonce=5_000_000_000_000)
    assert ok["error"] == []
    # Reused and lower nonces are rejected.
    assert sandbox.private(key, secret, "Balance", nonce=5_000_000_000_000) == {
        "error": ["EAPI:Invalid nonce"]
    }
    assert sandbox.private(key, secret, "Balance", nonce=4_999_999_999_999) == {
        "error": ["EAPI:Invalid nonce"]
    }
    assert sandbox.private(key, secret, "Balance", nonce=5_000_000_000_001)["error"] == []
    # Missing permission.
    assert sandbox.private(
        key,
        secret,
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "100", "volume": "1"},
        nonce=5_000_000_000_002,
    ) == {"error": ["EGeneral:Permission denied"]}
    assert sandbox.private(key, secret, "Ledgers", nonce=5_000_000_000_003) == {
        "error": ["EGeneral:Permission denied"]
    }
    # Missing headers / unknown method.
    assert _raw(sandbox, "Balance", "nonce=1", {}) == {"error": ["EAPI:Invalid key"]}
    assert sandbox.private(key, secret, "NoSuchMethod") == {"error": ["EGeneral:Unknown method"]}


def test_nonce_window(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "10"})
    key, secret = sandbox.create_key(acct, nonce_window=1000)
    assert sandbox.private(key, secret, "Balance", nonce=10_000)["error"] == []
    # Lower but inside the window and unseen: accepted (out-of-order arrival).
    assert sandbox.private(key, secret, "Balance", nonce=9_500)["error"] == []
    # The exact same nonce again: rejected.
    assert sandbox.private(key, secret, "Balance", nonce=9_500) == {"error": ["EAPI:Invalid nonce"]}
    # Outside the window: rejected.
    assert sandbox.private(key, secret, "Balance", nonce=8_000) == {"error": ["EAPI:Invalid nonce"]}


def test_otp(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "10"})
    key, secret = sandbox.create_key(acct, otp="hunter2")
    assert sandbox.private(key, secret, "Balance")["error"] == ["EAPI:Invalid key"]
    assert sandbox.private(key, secret, "Balance", {"otp": "wrong"})["error"] == [
        "EAPI:Invalid key"
    ]
    assert sandbox.private(key, secret, "Balance", {"otp": "hunter2"})["error"] == []


def test_lockout_after_repeated_failures(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "10"})
    key, secret = sandbox.create_key(acct)
    _, wrong = sandbox.create_key(acct)
    for _ in range(10):
        assert sandbox.private(key, wrong, "Balance")["error"] == ["EAPI:Invalid signature"]
    # Locked: even a correct request is refused.
    assert sandbox.private(key, secret, "Balance") == {"error": ["EGeneral:Temporary lockout"]}
    sandbox.advance(14 * 60)
    assert sandbox.private(key, secret, "Balance") == {"error": ["EGeneral:Temporary lockout"]}
    sandbox.advance(2 * 60)
    assert sandbox.private(key, secret, "Balance")["error"] == []


def test_form_validate_trap(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "100000"})
    key, secret = sandbox.create_key(acct)
    order = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "30000",
        "volume": "0.01",
    }
    for value in ("true", "1", "0", "", "None", "no"):
        out = sandbox.private(key, secret, "AddOrder", {**order, "validate": value})
        assert out["error"] == []
        assert "txid" not in out["result"], value
    # JSON bodies honour the boolean.
    out = sandbox.private(key, secret, "AddOrder", {**order, "validate": False}, as_json=True)
    assert "txid" in out["result"]
    sandbox.configure(strict_validate_trap=True)
    try:
        out = sandbox.private(key, secret, "AddOrder", {**order, "validate": "false"})
        assert "txid" not in out["result"]
    finally:
        sandbox.configure(strict_validate_trap=False)
    out = sandbox.private(key, secret, "AddOrder", {**order, "validate": "false"})
    assert "txid" in out["result"]


def test_non_ascii_signature_is_an_invalid_signature(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "10"})
    key, _ = sandbox.create_key(acct)
    out = _raw(
        sandbox,
        "Balance",
        f"nonce={sandbox.next_nonce()}",
        {
            "API-Key": key,
            "API-Sign": "sign\u00e9",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert out == {"error": ["EAPI:Invalid signature"]}
