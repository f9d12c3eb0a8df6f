"""The one Kraken REST client every worker uses.

Built on python-kraken-sdk's ``SpotClient`` (not forked): the subclass only swaps the nonce
source for the shared Redis counter (nonce.py), puts the nonce first in the body as Kraken's
documented examples do, sets our User-Agent and base URL, and turns off the SDK's own
exception mapping so that errors are mapped once, here, to apps.kraken.errors. Signing is the
SDK's ``_get_kraken_signature`` (proven against Kraken's official example in the tests).

Every private call goes through the same steps:

1. take the key's sequencer lease (nonce.py) and charge its rate counters (ratelimit.py); if
   they have no room, release the lease and wait for budget without holding anything;
2. allocate the nonce and send, keeping the lease until the response has arrived, so requests
   arrive in nonce order;
3. map the answer: result, typed KrakenError, or, for a non-idempotent call whose outcome is
   open (answer lost, HTTP 5xx, Kraken's internal and outage errors: errors.ERROR_TABLE),
   UnknownOutcomeError, which is never retried. Idempotent reads are retried a bounded number
   of times with jittered exponential backoff on transient failures.

Before any of that, a non-idempotent call must be declared: either it is one exchange operation
(``operation=OperationRef(...)``, which only apps/exchange builds, after claiming the
operation's row so the call happens at most once) or it is validate-only (``validate=True`` on
a method where Kraken honours it). Anything else raises OperationRequiredError before a nonce
or any rate budget is used, so a retrying task or a stray script cannot move money twice.
``grep -rn "OperationRef("`` lists every place that can.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlsplit

import redis
import requests
import urllib3.exceptions
from django.conf import settings
from kraken.base_api import SpotClient

from apps.kraken import nonce, ratelimit
from apps.kraken.errors import (
    KrakenError,
    RateLimitError,
    ServiceUnavailableError,
    UnknownOutcomeError,
    error_from_codes,
    is_warning,
)
from apps.kraken.naming import decimal_to_wire

logger = logging.getLogger(__name__)

USER_AGENT = "kraken-institutional-portal/0.1 (python-kraken-sdk)"

# Calls whose effect must not happen twice. A lost answer on one of these is an
# UnknownOutcomeError and is never re-sent automatically (FACTS §6.2). Cancels are included:
# ``txid`` may be a userref, and a blind re-send could cancel an order placed in between.
NON_IDEMPOTENT: frozenset[str] = frozenset(
    {
        "AddOrder",
        "AddOrderBatch",
        "EditOrder",
        "AmendOrder",
        "CancelOrder",
        "CancelOrderBatch",
        "CancelAll",
        "Withdraw",
        "WithdrawCancel",
        "WalletTransfer",
        "AccountTransfer",
        "CreateSubaccount",
        "Earn/Allocate",
        "Earn/Deallocate",
        "Stake",
        "Unstake",
        "AddExport",
        "RemoveExport",
    }
)
# Methods on which ``validate=true`` makes Kraken check the request without acting (the spec's
# AddOrder, AddOrderBatch and EditOrder). AmendOrder, Withdraw and the rest have no such
# parameter: Kraken would ignore one and carry the request out, so it declares nothing there.
VALIDATE_ONLY_METHODS: frozenset[str] = frozenset({"AddOrder", "AddOrderBatch", "EditOrder"})
# Nested parameters (arrays of orders) only work as JSON bodies (FACTS §1.4).
JSON_METHODS: frozenset[str] = frozenset({"AddOrderBatch", "CancelOrderBatch"})

OPERATION_REQUIRED = (
    "Kraken {method} is not idempotent: it is sent only as an exchange operation "
    "(operation=OperationRef(...)) or validate-only (validate=True). It was not sent."
)
IDEMPOTENT_OVERRIDE = (
    "Kraken {method} is not idempotent here; idempotent=True would let a retry repeat it."
)
SEQUENCER_BUSY = "another request on this API key did not finish in time"
COORDINATION_DOWN = "Redis is unavailable, so the request was not sent"


@dataclass(frozen=True)
class OperationRef:
    """The declaration that a non-idempotent call is one exchange operation.

    Only apps/exchange builds these: it writes the operation row and claims it (PREPARED to
    SENDING with a conditional update) before calling, so the call is made at most once and an
    unknown outcome is reconciled by the operation's reference instead of being resent.
    ``operation_id`` is that row's id, for logs.
    """

    operation_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.operation_id, str) or not self.operation_id.strip():
            raise ValueError("OperationRef needs the exchange operation's id.")


class OperationRequiredError(TypeError):
    """A non-idempotent Kraken method was called without OperationRef and not validate-only.

    A programming error, not an answer from Kraken (so not a KrakenError): nothing was sent.
    """

    def __init__(self, method: str) -> None:
        self.method = method
        super().__init__(OPERATION_REQUIRED.format(method=method))


METHOD_NOT_ALLOWED = (
    "This key was opened only for {allowed}; Kraken {method} is not among them. It was not sent."
)


class MethodNotAllowedForKeyError(TypeError):
    """The key was opened for a narrower purpose (a cancel-only key opened to cancel) that
    does not include ``method``. A programming error, not an answer from Kraken (so not a
    KrakenError): nothing was sent, and no nonce or rate budget was used."""

    def __init__(self, method: str, allowed: frozenset[str]) -> None:
        self.method = method
        super().__init__(
            METHOD_NOT_ALLOWED.format(method=method, allowed=", ".join(sorted(allowed)))
        )


@dataclass(frozen=True)
class KrakenKey:
    """A decrypted credential. It lives only in a worker's memory; never log or store it."""

    key_id: str  # stable id for logs and bookkeeping (e.g. "cred:<pk>"); never the secret
    api_key: str
    secret: str = field(repr=False)
    otp: str | None = field(default=None, repr=False)
    tier: str = "starter"  # a key of ratelimit.TIERS: the account's (its master's) tier
    # The Kraken account the key acts on (apps.orgs KrakenAccount.counter_ref, "acct:<id>"):
    # the matching-engine counter is Kraken's per account and pair, so every key of one account
    # charges the same one. Empty: the key is taken as its own account.
    account_ref: str = ""
    # The only private methods this opened key may call (None: any). The vault narrows a key
    # opened to cancel, so a cancel-only key cannot trade whatever its caller claims.
    allowed_methods: frozenset[str] | None = None

    def __post_init__(self) -> None:
        ratelimit.tier_limits(self.tier)  # ValueError for an unknown tier, at construction


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def is_validate_only(method: str, params: dict[str, Any] | None = None) -> bool:
    """Whether Kraken will only check this request. ``validate`` must be the bool True: a
    string such as "false" would also mean validate-only on the wire (FACTS §6.4), but the
    portal never relies on that trap, so only the explicit form counts."""
    return method in VALIDATE_ONLY_METHODS and (params or {}).get("validate") is True


def is_idempotent(method: str, params: dict[str, Any] | None = None) -> bool:
    """Whether re-sending ``method`` after a lost answer is harmless."""
    if is_validate_only(method, params):
        return True
    if method in NON_IDEMPOTENT:
        return False
    # DepositAddresses with new=true creates a fresh address every time.
    return not (method == "DepositAddresses" and _truthy((params or {}).get("new")))


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


# --- The python-kraken-sdk subclass ---------------------------------------------------------


class PortalSpotClient(SpotClient):
    """``SpotClient`` with the portal's nonce source, base URL, timeout and User-Agent."""

    HEADERS = {"User-Agent": USER_AGENT}  # type: ignore[misc]  # the SDK reads it per session

    def __init__(
        self,
        *,
        api_key: str = "",
        secret: str = "",
        url: str,
        timeout: int,
        nonce_source: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(key=api_key, secret=secret, url=url, use_custom_exceptions=False)
        self.TIMEOUT = timeout
        self._nonce_source = nonce_source

    def __repr__(self) -> str:
        return f"<PortalSpotClient {self.URL}>"

    def get_nonce(self) -> str:
        if self._nonce_source is None:
            raise RuntimeError("This client has no nonce source (public client).")
        return str(self._nonce_source())

    def _prepare_request(  # type: ignore[override]
        self,
        *,
        method: str,
        uri: str,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        do_json: bool = False,
        query_str: str | None = None,
        extra_params: str | dict[str, Any] | None = None,
    ) -> tuple[str, str, dict[str, Any], dict[str, Any], str]:
        if auth:
            # The SDK assigns params["nonce"]; reserving the first slot puts it first in the
            # body, as in Kraken's documented payloads (any order is valid for Kraken).
            params = {"nonce": "", **(params or {})}
        result: tuple[str, str, dict[str, Any], dict[str, Any], str] = super()._prepare_request(
            method=method,
            uri=uri,
            params=params,
            auth=auth,
            do_json=do_json,
            query_str=query_str,
            extra_params=extra_params,
        )
        return result

    def sign(self, url_path: str, data: str, nonce_value: int) -> str:
        """The SDK's API-Sign computation (exposed for the official-vector test)."""
        signature: str = self._get_kraken_signature(url_path=url_path, data=data, nonce=nonce_value)
        return signature


def base_url() -> str:
    """Scheme and host of settings.KRAKEN_API_URL; paths are always ``/0/public|private/...``."""
    parts = urlsplit(str(settings.KRAKEN_API_URL))
    return f"{parts.scheme}://{parts.netloc}"


def _timeout() -> int:
    return max(1, int(_setting("KRAKEN_HTTP_TIMEOUT", 10)))


_clients: OrderedDict[tuple[int, str, int, KrakenKey | None], PortalSpotClient] = OrderedDict()
_clients_lock = threading.Lock()
_MAX_CLIENTS = 64


def _client_for(key: KrakenKey | None) -> PortalSpotClient:
    """A cached SDK client per (process, URL, key): keeps HTTP connections alive between calls.

    Keyed by process id because a forked worker must not share its parent's sockets.
    """
    url = base_url()
    timeout = _timeout()
    ident = (os.getpid(), url, timeout, key)
    with _clients_lock:
        client = _clients.get(ident)
        if client is not None:
            _clients.move_to_end(ident)
            return client
        if key is None:
            client = PortalSpotClient(url=url, timeout=timeout)
        else:
            api_key = key.api_key
            client = PortalSpotClient(
                api_key=api_key,
                secret=key.secret,
                url=url,
                timeout=timeout,
                nonce_source=lambda: nonce.next_nonce(api_key),
            )
        _clients[ident] = client
        while len(_clients) > _MAX_CLIENTS:
            _clients.popitem(last=False)
        return client


# --- Parameters on the wire ----------------------------------------------------------------


def _wire_value(value: Any, *, as_json: bool) -> Any:
    if isinstance(value, bool):
        return value if as_json else ("true" if value else "false")
    if isinstance(value, Decimal):
        return decimal_to_wire(value)
    if isinstance(value, float):
        raise TypeError("Kraken parameters must be Decimal, int or str, never float.")
    if isinstance(value, list | tuple):
        items = [_wire_value(v, as_json=as_json) for v in value]
        return items if as_json else ",".join(str(v) for v in items)
    if isinstance(value, dict):
        return {k: _wire_value(v, as_json=as_json) for k, v in value.items() if v is not None}
    return value


def wire_params(params: dict[str, Any], *, as_json: bool) -> dict[str, Any]:
    """Request parameters as Kraken expects them: Decimals in plain notation, booleans as
    ``true``/``false``, lists comma-joined and ``close={...}`` as ``close[ordertype]=...`` in
    form bodies; ``None`` values and ``validate=False`` are left out."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name == "validate" and value is False:
            # In a form body ANY validate value, even "false", means validate-only (FACTS §6.4).
            continue
        converted = _wire_value(value, as_json=as_json)
        if isinstance(converted, dict) and not as_json:
            for sub, sub_value in converted.items():
                out[f"{name}[{sub}]"] = sub_value
        else:
            out[name] = converted
    return out


def _reference(params: dict[str, Any]) -> str | None:
    """The caller's own id for the request, used to reconcile an unknown outcome."""
    for name in ("cl_ord_id", "userref", "txid", "refid"):
        value = params.get(name)
        if value not in (None, ""):
            return f"{name}={value}"
    return None


# --- Sending and interpreting ---------------------------------------------------------------


def _never_sent(exc: BaseException) -> bool:
    """True when the connection could not even be opened, so the request never left."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(
            current, requests.exceptions.ConnectTimeout | urllib3.exceptions.NewConnectionError
        ):
            return True
        if isinstance(current, urllib3.exceptions.MaxRetryError):
            stack.append(current.reason)
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        stack.extend([current.__cause__, current.__context__])
    return False


def _transport_error(
    method: str, exc: requests.RequestException, *, idempotent: bool, reference: str | None
) -> KrakenError:
    if _never_sent(exc):
        return ServiceUnavailableError(method, detail="could not connect")
    if isinstance(exc, requests.exceptions.Timeout):
        reason = "no answer before the timeout"
    else:
        reason = "connection lost before the answer arrived"
    if not idempotent:
        return UnknownOutcomeError(method, reference=reference, detail=reason)
    return ServiceUnavailableError(method, detail=reason)


def parse_response(
    method: str, response: requests.Response, *, idempotent: bool, reference: str | None = None
) -> Any:
    """Kraken's envelope → result, or the matching KrakenError."""
    status = response.status_code
    if status == 429:
        raise RateLimitError(method, detail="HTTP 429", http_status=status)
    if status >= 500:
        # Cloudflare/edge failure: the request may or may not have reached the engine.
        if not idempotent:
            raise UnknownOutcomeError(
                method, reference=reference, detail=f"HTTP {status}", http_status=status
            )
        raise ServiceUnavailableError(method, detail=f"HTTP {status}", http_status=status)
    if status != 200:
        raise KrakenError(method, detail=f"HTTP {status}", http_status=status)
    try:
        data = response.json(parse_float=Decimal)
    except ValueError:
        data = None
    if not isinstance(data, dict) or ("error" not in data and "result" not in data):
        # An HTML page or a truncated body instead of Kraken's JSON envelope.
        if not idempotent:
            raise UnknownOutcomeError(
                method, reference=reference, detail="unreadable answer", http_status=status
            )
        raise ServiceUnavailableError(method, detail="unreadable answer", http_status=status)
    codes = [str(c) for c in data.get("error") or []]
    if any(not is_warning(c) for c in codes):
        raise error_from_codes(method, codes, idempotent=idempotent, reference=reference)
    if codes:
        logger.warning("Kraken %s answered with warnings: %s", method, ", ".join(codes))
    return data.get("result")


def _backoff(attempt: int) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base·2^(attempt-1))]."""
    base = _setting("KRAKEN_RETRY_BASE_DELAY", 0.25)
    cap = _setting("KRAKEN_RETRY_MAX_DELAY", 4.0)
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))  # noqa: S311 - jitter only


def _with_retries(method: str, idempotent: bool, call: Callable[[], Any]) -> Any:
    attempts = max(1, int(_setting("KRAKEN_READ_ATTEMPTS", 4))) if idempotent else 1
    attempt = 1
    while True:
        try:
            return call()
        except KrakenError as exc:
            if attempt >= attempts or not exc.transient:
                raise
            delay = _backoff(attempt)
            logger.info(
                "Kraken %s failed (%s); retry %d/%d in %.2fs",
                method,
                exc.code or exc.detail,
                attempt,
                attempts - 1,
                delay,
            )
            time.sleep(delay)
            attempt += 1


def kraken_public(method: str, params: dict[str, Any] | None = None) -> Any:
    """Call a public endpoint (``Time``, ``AssetPairs``, ...) and return its ``result``."""
    wire = wire_params(dict(params or {}), as_json=False)

    def once() -> Any:
        client = _client_for(None)
        try:
            # With use_custom_exceptions=False the SDK returns the raw Response.
            response = cast(
                requests.Response,
                client.request("GET", f"/0/public/{method}", params=wire, auth=False),
            )
        except requests.RequestException as exc:
            raise _transport_error(method, exc, idempotent=True, reference=None) from None
        return parse_response(method, response, idempotent=True)

    return _with_retries(method, True, once)


def kraken_private(
    key: KrakenKey,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    operation: OperationRef | None = None,
    idempotent: bool | None = None,
) -> Any:
    """Call a private endpoint with ``key`` and return its ``result``.

    Waits for rate budget instead of being rejected, sends requests on one key in nonce order,
    retries idempotent calls on transient failures and raises a typed KrakenError otherwise.
    A non-idempotent call needs ``operation`` unless it is validate-only (module docstring);
    without it OperationRequiredError is raised and nothing is sent; a method outside the
    key's ``allowed_methods`` raises MethodNotAllowedForKeyError, also before anything is
    used. ``idempotent=False``
    makes a read fail on its first error instead of retrying; it can never make a write
    retryable.
    """
    if key.allowed_methods is not None and method not in key.allowed_methods:
        raise MethodNotAllowedForKeyError(method, key.allowed_methods)
    params = dict(params or {})
    idem = is_idempotent(method, params)
    if not idem and operation is None:
        raise OperationRequiredError(method)
    if idempotent is not None:
        if idempotent and not idem:
            raise ValueError(IDEMPOTENT_OVERRIDE.format(method=method))
        idem = idempotent
    if operation is not None:
        logger.debug("Kraken %s for operation %s", method, operation.operation_id)
    result = _with_retries(method, idem, lambda: _private_once(key, method, params, idem))
    try:
        _remember(key, method, params, result)
    except redis.RedisError:
        logger.warning("Kraken order ages could not be recorded after %s", method)
    return result


def _private_once(key: KrakenKey, method: str, params: dict[str, Any], idempotent: bool) -> Any:
    as_json = method in JSON_METHODS
    wire = wire_params(params, as_json=as_json)
    if key.otp:
        wire["otp"] = key.otp
    reference = _reference(params)
    started = time.monotonic()
    try:
        charges = ratelimit.charges_for(
            api_key=key.api_key,
            tier=key.tier,
            method=method,
            params=params,
            account_ref=key.account_ref or None,
        )
        response = _send_in_order(
            key, method, wire, charges, as_json=as_json, idempotent=idempotent, reference=reference
        )
    except nonce.SequencerTimeout:
        raise ServiceUnavailableError(method, detail=SEQUENCER_BUSY) from None
    except redis.RedisError:
        # Redis is only used before sending (budget, lease, nonce; the lease release never
        # raises), so the request was not sent: without Redis nonce order is not guaranteed.
        raise ServiceUnavailableError(method, detail=COORDINATION_DOWN) from None
    try:
        result = parse_response(method, response, idempotent=idempotent, reference=reference)
    except RateLimitError:
        # Kraken saw more calls than the model (another program on this key, or a lost Redis).
        try:
            ratelimit.mark_exhausted(charges)
        except redis.RedisError:
            logger.warning("Kraken rate model could not be updated after %s", method)
        raise
    finally:
        logger.debug("Kraken %s for %s took %.3fs", method, key.key_id, time.monotonic() - started)
    return result


def _send_in_order(
    key: KrakenKey,
    method: str,
    wire: dict[str, Any],
    charges: list[ratelimit.Charge],
    *,
    as_json: bool,
    idempotent: bool,
    reference: str | None,
) -> requests.Response:
    """Charge the budget, allocate the nonce and send, all while holding the key's lease.

    ``try_take`` checks and charges in one step and says how long to wait when it refuses, so
    there is no separate look at the counters before taking the lease: a call with budget to
    spare costs four Redis round trips (lease, take, nonce, release). Without room the lease is
    released at once and the wait happens outside it.
    """
    timeout = _timeout()
    deadline = time.monotonic() + _setting("KRAKEN_RATE_MAX_WAIT", 45.0)
    lease_wait = _setting("KRAKEN_SEQUENCER_WAIT", 30.0)
    client = _client_for(key)
    while True:
        with nonce.sequenced(key.api_key, ttl=2 * timeout + 5, wait=lease_wait):
            wait = ratelimit.try_take(charges)
            if wait <= 0:
                try:
                    # With use_custom_exceptions=False the SDK returns the raw Response; it
                    # calls get_nonce() (our Redis counter) while we hold the lease.
                    return cast(
                        requests.Response,
                        client.request(
                            "POST", f"/0/private/{method}", params=wire, do_json=as_json
                        ),
                    )
                except requests.RequestException as exc:
                    raise _transport_error(
                        method, exc, idempotent=idempotent, reference=reference
                    ) from None
        if time.monotonic() + wait > deadline:
            raise _BudgetExhaustedError(method, detail=f"rate budget needs {wait:.1f}s more")
        time.sleep(wait)


class _BudgetExhaustedError(RateLimitError):
    """Our own budget would make the caller wait longer than KRAKEN_RATE_MAX_WAIT."""

    @property
    def transient(self) -> bool:
        return False


def _remember(key: KrakenKey, method: str, params: dict[str, Any], result: Any) -> None:
    """Record placement times of our orders for the trading counter's age penalties."""
    if method not in {"AddOrder", "AddOrderBatch", "EditOrder", "AmendOrder"}:
        return
    if not isinstance(result, dict):
        return
    idents: list[str] = []
    pair = params.get("pair")
    if method == "AddOrder":
        idents = [str(t) for t in result.get("txid") or []]
    elif method == "AddOrderBatch":
        idents = [str(o["txid"]) for o in result.get("orders") or [] if o.get("txid")]
        idents += [
            str(o["cl_ord_id"])
            for o in params.get("orders") or []
            if isinstance(o, dict) and o.get("cl_ord_id")
        ]
    elif method == "EditOrder" and result.get("txid"):
        idents = [str(result["txid"])]
    elif method == "AmendOrder":
        ident = params.get("txid") or params.get("cl_ord_id")
        if ident:
            idents = [str(ident)]
            pair = pair or ratelimit.remembered_pair(
                key.api_key, str(ident), account_ref=key.account_ref or None
            )
    if method in {"AddOrder", "EditOrder"} and params.get("cl_ord_id"):
        idents.append(str(params["cl_ord_id"]))
    if isinstance(pair, str) and idents:
        ratelimit.remember_orders(
            api_key=key.api_key, pair=pair, idents=idents, account_ref=key.account_ref or None
        )


def websocket_token(key: KrakenKey) -> str:
    """A token for the authenticated WebSocket (valid 15 minutes until a subscription uses it)."""
    result = kraken_private(key, "GetWebSocketsToken")
    return str(result["token"])
