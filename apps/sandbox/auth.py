"""REST authentication exactly as Kraken documents it (FACTS §1): API-Sign over the raw
body, strictly increasing nonce per key with an optional window, permissions, lockout."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

PERMISSIONS: frozenset[str] = frozenset(
    {
        "query_funds",
        "query_open",
        "query_closed",
        "query_ledger",
        "export",
        "trade",
        "cancel",
        "deposit",
        "withdraw",
        "earn",
        "websocket",
    }
)
ALL_PERMISSIONS: list[str] = sorted(PERMISSIONS)

# Which key permissions each private method needs, from the "API Key Permissions Required"
# line of each endpoint in the spec (spot-rest/openapi_v3.yaml) and, for GetApiKeyInfo, the
# change log (CHANGES-2025-2026.md). A requirement is a tuple of alternatives (any one
# suffices); each alternative is the permissions it needs together. ``()`` means a valid key
# is enough. Methods missing here are unknown to the sandbox.
Requirement = tuple[tuple[str, ...], ...]
NO_PERMISSION: Requirement = ()
QUERY_FUNDS: Requirement = (("query_funds",),)
TRADE_OR_CANCEL: Requirement = (("trade",), ("cancel",))
TRADE_AND_CANCEL: Requirement = (("trade", "cancel"),)
METHOD_PERMISSIONS: dict[str, Requirement] = {
    "Balance": QUERY_FUNDS,
    "BalanceEx": QUERY_FUNDS,
    "CreditLines": QUERY_FUNDS,
    "TradeBalance": (("query_open",),),
    "OpenOrders": (("query_open",),),
    # "depending on status of order": the handlers check each order (see ``may_see_order``).
    "QueryOrders": (("query_open",), ("query_closed",)),
    "OrderAmends": (("query_open",), ("query_closed",)),
    "ClosedOrders": (("query_closed",),),
    "TradesHistory": (("query_closed",),),
    "QueryTrades": (("query_closed",),),
    "OpenPositions": (("query_open",),),
    "Ledgers": (("query_ledger",),),
    "QueryLedgers": (("query_ledger",),),
    "TradeVolume": QUERY_FUNDS,
    "AddExport": (("export",),),
    "ExportStatus": (("export",),),
    "RetrieveExport": (("export",),),
    "RemoveExport": (("export",),),
    "AddOrder": (("trade",),),
    "AddOrderBatch": TRADE_AND_CANCEL,
    "AmendOrder": TRADE_OR_CANCEL,
    "EditOrder": TRADE_AND_CANCEL,
    "CancelOrder": TRADE_OR_CANCEL,
    "CancelAll": TRADE_OR_CANCEL,
    "CancelAllOrdersAfter": TRADE_OR_CANCEL,
    "CancelOrderBatch": TRADE_OR_CANCEL,
    "GetWebSocketsToken": (("websocket",),),
    "DepositMethods": (("query_funds", "deposit"),),
    "DepositAddresses": QUERY_FUNDS,
    "DepositStatus": QUERY_FUNDS,
    "WithdrawMethods": (("query_funds", "withdraw"),),
    "WithdrawAddresses": (("query_funds", "withdraw"),),
    "WithdrawInfo": (("query_funds", "withdraw"),),
    "Withdraw": (("withdraw",),),
    "WithdrawStatus": (("withdraw",), ("query_ledger",)),
    # "Withdraw, unless withdrawal is a WalletTransfer": the handler checks (it knows which).
    "WithdrawCancel": NO_PERMISSION,
    "WalletTransfer": QUERY_FUNDS,
    "CreateSubaccount": (("withdraw",),),
    "AccountTransfer": (("withdraw",),),
    "Earn/Allocate": (("earn",),),
    "Earn/Deallocate": (("earn",),),
    "Earn/AllocateStatus": (("earn",), ("query_funds",)),
    "Earn/DeallocateStatus": (("earn",), ("query_funds",)),
    "Earn/Strategies": NO_PERMISSION,
    "Earn/Allocations": QUERY_FUNDS,
    "GetApiKeyInfo": NO_PERMISSION,
}


def permitted(requirement: Requirement, permissions: set[str]) -> bool:
    """True when ``permissions`` satisfy one alternative of ``requirement``."""
    if not requirement:
        return True
    return any(all(name in permissions for name in option) for option in requirement)


LOCKOUT_THRESHOLD = 10  # consecutive failures before a lockout (Kraken does not publish it)
LOCKOUT_SECONDS = 900.0  # "Temporary lockouts typically last approximately 15 minutes"


@dataclass(slots=True)
class ApiKey:
    key: str
    secret: str
    account_id: str
    permissions: set[str]
    nonce_window: int = 0
    otp: str | None = None
    last_nonce: int = 0
    # Nonces accepted inside the window, so a replay of the exact same nonce still fails.
    recent: set[int] = field(default_factory=set)
    failures: int = 0
    locked_until: float = 0.0
    name: str = ""
    created_at: float = 0.0
    last_used_at: float = 0.0
    # Authenticated private REST calls per method since start-up (not persisted): the control
    # API's /sandbox/limits shows them, so a test can prove a client made no REST call.
    calls: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "secret": self.secret,
            "account_id": self.account_id,
            "permissions": sorted(self.permissions),
            "nonce_window": self.nonce_window,
            "otp": self.otp,
            "last_nonce": self.last_nonce,
            "name": self.name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ApiKey:
        return cls(
            key=d["key"],
            secret=d["secret"],
            account_id=d["account_id"],
            permissions=set(d["permissions"]),
            nonce_window=int(d.get("nonce_window", 0)),
            otp=d.get("otp"),
            last_nonce=int(d.get("last_nonce", 0)),
            name=str(d.get("name", "")),
            created_at=float(d.get("created_at", 0.0)),
            last_used_at=float(d.get("last_used_at", 0.0)),
        )


def sign(urlpath: str, body: bytes, nonce: str, secret: str) -> str:
    """API-Sign = b64(HMAC-SHA512(b64decode(secret), path || SHA256(nonce + body)))."""
    digest = hashlib.sha256(nonce.encode() + body).digest()
    mac = hmac.new(base64.b64decode(secret), urlpath.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


class AuthError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Authenticator:
    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        # Sequential invalid-key errors per client address ("Too many sequential
        # EAPI:Invalid key errors" → EGeneral:Temporary lockout).
        self.bad_key_by_ip: dict[str, tuple[int, float]] = {}

    def _fail(self, k: ApiKey, now: float) -> None:
        k.failures += 1
        if k.failures >= LOCKOUT_THRESHOLD:
            k.locked_until = now + LOCKOUT_SECONDS
            k.failures = 0

    def check_nonce(self, k: ApiKey, nonce: int) -> bool:
        if nonce > k.last_nonce:
            if k.nonce_window:
                k.recent = {n for n in k.recent if n > nonce - k.nonce_window}
                k.recent.add(nonce)
            k.last_nonce = nonce
            return True
        if k.nonce_window and nonce > k.last_nonce - k.nonce_window and nonce not in k.recent:
            k.recent.add(nonce)
            return True
        return False

    def verify(
        self,
        *,
        path: str,
        body: bytes,
        api_key: str | None,
        api_sign: str | None,
        nonce_raw: object,
        otp: object,
        method: str,
        ip: str,
        now: float,
    ) -> ApiKey:
        """Return the key or raise AuthError with Kraken's exact error string."""
        locked = self.bad_key_by_ip.get(ip)
        if locked and locked[1] > now:
            raise AuthError("EGeneral:Temporary lockout")
        k = self.keys.get(api_key or "")
        if k is None:
            count = (locked[0] if locked and locked[1] == 0.0 else 0) + 1
            if count >= LOCKOUT_THRESHOLD:
                self.bad_key_by_ip[ip] = (0, now + LOCKOUT_SECONDS)
            else:
                self.bad_key_by_ip[ip] = (count, 0.0)
            raise AuthError("EAPI:Invalid key")
        self.bad_key_by_ip.pop(ip, None)
        if k.locked_until > now:
            raise AuthError("EGeneral:Temporary lockout")
        if nonce_raw is None or isinstance(nonce_raw, bool):
            self._fail(k, now)
            raise AuthError("EAPI:Invalid nonce")
        nonce_str = str(nonce_raw)
        try:
            nonce = int(nonce_str)
        except ValueError:
            self._fail(k, now)
            raise AuthError("EAPI:Invalid nonce") from None
        try:
            expected = sign(path, body, nonce_str, k.secret)
        except (binascii.Error, ValueError):
            expected = ""
        # Bytes, not str: compare_digest raises TypeError on a non-ASCII str header.
        given = api_sign.encode("utf-8", "surrogateescape") if api_sign else b""
        if not given or not hmac.compare_digest(expected.encode(), given):
            self._fail(k, now)
            raise AuthError("EAPI:Invalid signature")
        if nonce < 0 or nonce >= 2**64 or not self.check_nonce(k, nonce):
            self._fail(k, now)
            raise AuthError("EAPI:Invalid nonce")
        if k.otp is not None and (otp is None or str(otp) != k.otp):
            self._fail(k, now)
            raise AuthError("EAPI:Invalid key")
        if not permitted(METHOD_PERMISSIONS.get(method, NO_PERMISSION), k.permissions):
            raise AuthError("EGeneral:Permission denied")
        k.failures = 0
        k.last_used_at = now
        return k
