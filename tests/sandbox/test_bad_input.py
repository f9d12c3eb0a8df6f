"""Bad input gets Kraken's error envelope — never a traceback or a 500."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.sandbox.engine import ORDER_TYPES
from tests.plugins.sandbox import SandboxProcess

KRAKEN_ERROR = re.compile(
    r"^[EW](General|Auth|API|Query|Order|Trade|Funding|Service|"
    r"Earnings|Database|Session):"
)


@pytest.fixture(scope="module")
def trader(sandbox: SandboxProcess) -> Iterator[tuple[str, str, str]]:
    acct = sandbox.create_account({"USD": "1000000", "XBT": "10", "ETH": "100"}, tier="pro")
    key, secret = sandbox.create_key(acct)
    sandbox.add_withdraw_address(acct, "XBT", "w1", "bc1qbadinputaddress000000000000000")
    yield acct, key, secret
    sandbox.private(key, secret, "CancelAll")


class Caller:
    """Counts calls and fast-forwards the clock so rate limits don't mask validation."""

    def __init__(self, sb: SandboxProcess, key: str, secret: str) -> None:
        self.sb, self.key, self.secret, self.n = sb, key, secret, 0

    def __call__(
        self, method: str, params: dict[str, Any], *, as_json: bool = False
    ) -> dict[str, Any]:
        self.n += 1
        if self.n % 10 == 0:
            self.sb.advance(30)
        return self.sb.private(self.key, self.secret, method, params, as_json=as_json)


_CALLERS: dict[str, Caller] = {}


def _caller(sb: SandboxProcess, key: str, secret: str) -> Caller:
    # One caller per key across hypothesis examples, so the clock fast-forward cadence holds.
    return _CALLERS.setdefault(key, Caller(sb, key, secret))


def assert_kraken_shaped(out: dict[str, Any]) -> None:
    assert isinstance(out.get("error"), list)
    for err in out["error"]:
        assert isinstance(err, str)
        assert KRAKEN_ERROR.match(err), err
        assert "Internal error" not in err, err
    if out["error"]:
        assert "result" not in out
    else:
        assert "result" in out


def test_specific_errors(sandbox: SandboxProcess, trader: tuple[str, str, str]) -> None:
    _, key, secret = trader
    call = Caller(sandbox, key, secret)
    base = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "30000",
        "volume": "0.01",
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({**base, "pair": "NOPEUSD"}, "EQuery:Unknown asset pair"),
        ({**base, "volume": "-1"}, "EGeneral:Invalid arguments:volume"),
        ({**base, "volume": "abc"}, "EGeneral:Invalid arguments:volume"),
        ({**base, "volume": "0.000000001"}, "EGeneral:Invalid arguments:volume"),
        (
            {**base, "price": "30000.05"},
            "EOrder:Invalid price:XXBTZUSD price can only be specified up to 1 decimals.",
        ),
        ({**base, "ordertype": "sideways"}, "EGeneral:Invalid arguments:ordertype"),
        ({**base, "type": "hold"}, "EGeneral:Invalid arguments:type"),
        ({**base, "bogus": "1"}, "EGeneral:Invalid arguments:bogus"),
        ({**base, "volume": "0.00001"}, "EOrder:Order minimum not met"),
        (
            {**base, "pair": "XRPUSD", "price": "0.00001", "volume": "10"},
            "EOrder:Cost minimum not met",
        ),
        ({**base, "volume": "1000"}, "EOrder:Insufficient funds"),
        ({**base, "oflags": "post,fly"}, "EGeneral:Invalid arguments:oflags"),
        ({**base, "oflags": "fcib,fciq"}, "EGeneral:Invalid arguments:oflags"),
        (
            {**base, "timeinforce": "FOK", "oflags": "post"},
            "EGeneral:Invalid arguments:timeinforce",
        ),
        ({**base, "timeinforce": "DAY"}, "EGeneral:Invalid arguments:timeinforce"),
        ({**base, "timeinforce": "GTD"}, "EGeneral:Invalid arguments:expiretm"),
        ({**base, "userref": "1", "cl_ord_id": "x"}, "EGeneral:Invalid arguments:cl_ord_id"),
        ({**base, "deadline": "2001-01-01T00:00:00Z"}, "EService:Deadline elapsed"),
        ({**base, "deadline": "tomorrow"}, "EGeneral:Invalid arguments:deadline"),
        (
            {**base, "ordertype": "stop-loss-limit", "price": "70000"},
            "EGeneral:Invalid arguments:price2",
        ),
        ({k: v for k, v in base.items() if k != "pair"}, "EGeneral:Invalid arguments:pair"),
    ]
    for params, expected in cases:
        assert call("AddOrder", params) == {"error": [expected]}, params
    assert call("CancelOrder", {"txid": "OXXXXX-XXXXX-XXXXXX"}) == {
        "error": ["EOrder:Unknown order"]
    }
    assert call("Ledgers", {"asset": "NOPE"}) == {"error": ["EQuery:Unknown asset"]}
    assert call("AddOrderBatch", {"pair": "XBTUSD", "orders": "x"}) == {
        "error": ["EGeneral:Invalid arguments:orders"]
    }
    assert call(
        "Withdraw", {"asset": "XBT", "key": "w1", "amount": "0.1", "max_fee": "0.00001"}
    ) == {"error": ["EFunding:Max fee exceeded"]}
    assert call(
        "Withdraw", {"asset": "XBT", "key": "w1", "amount": "0.1", "address": "bc1qsomeoneelse"}
    ) == {"error": ["EFunding:Invalid withdrawal address"]}
    assert call("Withdraw", {"asset": "XBT", "key": "zz", "amount": "0.1"}) == {
        "error": ["EFunding:Unknown withdraw key"]
    }
    assert call("Withdraw", {"asset": "XBT", "key": "w1", "amount": "-3"}) == {
        "error": ["EFunding:Invalid amount"]
    }
    assert call("Earn/Allocate", {"strategy_id": "nope", "amount": "1"}) == {
        "error": ["EGeneral:Invalid arguments:Invalid strategy ID"]
    }
    assert sandbox.public("Ticker", pair="FOO") == {"error": ["EQuery:Unknown asset pair"]}
    assert sandbox.public("OHLC", pair="XBTUSD", interval="7") == {
        "error": ["EGeneral:Invalid arguments:interval"]
    }
    assert sandbox.public("Nope") == {"error": ["EGeneral:Unknown method"]}


def _post(sb: SandboxProcess, path: str, body: bytes, headers: dict[str, str]) -> Any:
    req = urllib.request.Request(  # noqa: S310 - local test server
        sb.url + path, data=body, method="POST", headers=headers
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        assert resp.status == 200
        return json.loads(resp.read())


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1,2,3]", b"\xff\xfe\x00", b"nonce", b"nonce=1&&&=", b'{"nonce": [1]}', b""],
)
def test_malformed_bodies(
    sandbox: SandboxProcess, trader: tuple[str, str, str], body: bytes
) -> None:
    _, key, _ = trader
    for ctype in ("application/json", "application/x-www-form-urlencoded"):
        out = _post(
            sandbox,
            "/0/private/AddOrder",
            body,
            {"API-Key": key, "API-Sign": "AAAA", "Content-Type": ctype},
        )
        assert_kraken_shaped(out)
        assert out["error"]


numbers = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=12).map(str),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "1e5",
            "1E-9",
            "+1",
            "-0",
            "0",
            ".5",
            "5.",
            "NaN",
            "inf",
            "0x10",
            "1,5",
            "\uff11\uff12",
            "+5%",
            "#2%",
            "-2%",
            "+0",
        ]
    ),
    st.text(max_size=12),
)
ADD_ORDER = st.fixed_dictionaries(
    {
        "pair": st.one_of(
            st.sampled_from(["XBTUSD", "XXBTZUSD", "BTC/USD", "ETHUSD", "xbt/usd", "DOGEUSD"]),
            st.text(max_size=10),
        ),
        "type": st.sampled_from(["buy", "sell", "BUY", "", "hold"]),
        # Every order type the exchange knows, and one it does not.
        "ordertype": st.sampled_from([*sorted(ORDER_TYPES), "fok"]),
        "volume": numbers,
    },
    optional={
        "price": numbers,
        "price2": numbers,
        "oflags": st.sampled_from(
            ["post", "fcib", "fciq", "nompp", "viqc", "post,viqc", "fcib,fciq", "x", ""]
        ),
        "timeinforce": st.sampled_from(["GTC", "IOC", "GTD", "gtc", "FOK"]),
        "expiretm": numbers,
        "starttm": numbers,
        "userref": numbers,
        "cl_ord_id": st.text(max_size=40),
        "displayvol": numbers,
        "trigger": st.sampled_from(["last", "index", "mark"]),
        "stptype": st.sampled_from(["cancel-newest", "cancel-oldest", "cancel-both", "x"]),
        "leverage": st.sampled_from(["none", "2", "x"]),
        "close[ordertype]": st.sampled_from(["limit", "stop-loss", "market", "x"]),
        "close[price]": numbers,
        "deadline": st.text(max_size=25),
        "validate": st.sampled_from(["true", "false"]),
        "unknown_field": numbers,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=ADD_ORDER, as_json=st.booleans())
def test_fuzz_add_order(
    sandbox: SandboxProcess, trader: tuple[str, str, str], params: dict[str, Any], as_json: bool
) -> None:
    _, key, secret = trader
    if as_json:
        close = {k[6:-1]: params.pop(k) for k in list(params) if k.startswith("close[")}
        if close:
            params["close"] = close
    out = _caller(sandbox, key, secret)("AddOrder", params, as_json=as_json)
    assert_kraken_shaped(out)


WITHDRAW = st.fixed_dictionaries(
    {
        "asset": st.one_of(
            st.sampled_from(["XBT", "XXBT", "BTC", "ETH", "USD", "ZZZ"]), st.text(max_size=6)
        ),
        "key": st.one_of(st.just("w1"), st.text(max_size=8)),
        "amount": numbers,
    },
    optional={
        "max_fee": numbers,
        "address": st.text(max_size=40),
        "aclass": st.sampled_from(["currency", "x"]),
        "junk": numbers,
    },
)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=WITHDRAW, as_json=st.booleans())
def test_fuzz_withdraw(
    sandbox: SandboxProcess, trader: tuple[str, str, str], params: dict[str, Any], as_json: bool
) -> None:
    _, key, secret = trader
    out = _caller(sandbox, key, secret)("Withdraw", params, as_json=as_json)
    if params.get("key") == "w1" and params.get("asset") in ("XBT", "XXBT", "BTC"):
        assert out["error"] != ["EAPI:Rate limit exceeded"]
    assert_kraken_shaped(out)


WS_GARBAGE = [
    "not json",
    "[1,2,3]",
    "42",
    '{"method": 5}',
    '{"method": "subscribe"}',
    '{"method": "subscribe", "params": []}',
    '{"method": "subscribe", "params": {"channel": "book", "symbol": "BTC/USD"}}',
    '{"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": "10"}}',
    '{"method": "subscribe", "params": {"channel": "nope", "symbol": ["BTC/USD"]}}',
    '{"method": "subscribe", "params": {"channel": "executions"}}',
    '{"method": "add_order", "params": {"order_type": "limit"}}',
    '{"method": "unsubscribe", "params": {"channel": "ticker", "symbol": [null]}}',
    '{"method": "ping", "req_id": "abc"}',
    '{"method": "subscribe", "params": {"channel": "book", "symbol": [["BTC/USD"]]}}',
    '{"method": "subscribe", "params": {"channel": "ohlc", "symbol": ["BTC/USD"], '
    '"interval": [1]}}',
    '{"method": "cancel_order", "params": {"order_id": "x", "token": {}}}',
    '{"method": "amend_order", "params": {"order_id": [1], "token": 5}}',
]


async def test_ws_garbage_gets_errors_and_keeps_the_connection(sandbox: SandboxProcess) -> None:
    import websockets

    for url in (sandbox.ws_url, sandbox.ws_auth_url):
        async with websockets.connect(url) as ws:
            await ws.recv()  # status
            for frame in WS_GARBAGE:
                await ws.send(frame)
                reply = json.loads(await ws.recv())
                if reply.get("method") == "pong":
                    continue
                assert reply.get("success") is False, (frame, reply)
                assert isinstance(reply.get("error"), str)
                assert "Internal error" not in reply["error"], (frame, reply)
            await ws.send(json.dumps({"method": "ping", "req_id": 9}))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("method") == "pong":
                    assert msg["req_id"] == 9
                    break


WS_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**9),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)
WS_ADD = st.fixed_dictionaries(
    {
        "order_type": st.sampled_from(
            ["limit", "market", "stop-loss", "trailing-stop", "iceberg", "x"]
        ),
        "side": st.sampled_from(["buy", "sell", "x"]),
        "symbol": st.sampled_from(["BTC/USD", "ETH/USD", "XBT/USD", "NOPE/USD"]),
    },
    optional={
        "order_qty": WS_VALUES,
        "limit_price": WS_VALUES,
        "time_in_force": WS_VALUES,
        "post_only": WS_VALUES,
        "order_userref": WS_VALUES,
        "cl_ord_id": WS_VALUES,
        "triggers": st.one_of(
            WS_VALUES,
            st.fixed_dictionaries(
                {"price": WS_VALUES}, optional={"price_type": WS_VALUES, "reference": WS_VALUES}
            ),
        ),
        "display_qty": WS_VALUES,
        "expire_time": WS_VALUES,
        "leverage": WS_VALUES,
        "fee_preference": WS_VALUES,
    },
)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(orders=st.lists(WS_ADD, min_size=1, max_size=5))
def test_fuzz_ws_add_order(
    sandbox: SandboxProcess, trader: tuple[str, str, str], orders: list[dict[str, Any]]
) -> None:
    import asyncio

    import websockets

    _, key, secret = trader
    token = sandbox.private(key, secret, "GetWebSocketsToken")["result"]["token"]
    sandbox.advance(5)

    async def run() -> None:
        async with websockets.connect(sandbox.ws_auth_url) as ws:
            await ws.recv()
            for i, params in enumerate(orders):
                await ws.send(
                    json.dumps(
                        {"method": "add_order", "req_id": i, "params": {**params, "token": token}}
                    )
                )
                while True:
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if reply.get("req_id") == i:
                        break
                assert reply["method"] == "add_order"
                if reply["success"]:
                    assert isinstance(reply["result"]["order_id"], str)
                else:
                    assert KRAKEN_ERROR.match(reply["error"]), reply
                    assert "Internal error" not in reply["error"], (params, reply)

    asyncio.run(run())
