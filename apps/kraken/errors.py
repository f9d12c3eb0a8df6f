"""Kraken's error strings mapped to typed exceptions.

Kraken answers almost everything with HTTP 200 and ``{"error": ["<severity><category>:<text>"]}``
(FACTS §2.1). The strings carry suffixes (``EGeneral:Invalid arguments:ordertype``,
``EService:Throttled: <timestamp>``), so they are matched by *prefix*, longest prefix first.

Messages are built only from Kraken's error code, the method name and our own constants: never
from request parameters, headers or credentials, so an exception can be logged or shown safely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# User-facing explanations, one per class (tests assert on them).
AUTH_HINT = "Kraken rejected the API credentials (wrong key, wrong secret, or a temporary lockout)."
NONCE_HINT = (
    "Kraken rejected the request nonce. If this API key is also used by other software, give "
    "the portal its own key: nonces from another program may be larger than ours."
)
PERMISSION_HINT = "The API key does not have the permission this request needs."
RATE_LIMIT_HINT = "Kraken's rate limit for this key was reached; try again shortly."
FUNDS_HINT = "The account does not have enough available funds for this request."
INVALID_ARGUMENTS_HINT = "Kraken rejected the request arguments."
SERVICE_HINT = "Kraken is unavailable or overloaded right now."
UNKNOWN_OUTCOME_HINT = (
    "The request was sent but no answer arrived, so Kraken may or may not have carried it out. "
    "It was not retried; check the account (open/closed orders, ledgers) before sending it again."
)
UNKNOWN_ORDER_HINT = "Kraken does not know this order, or it is no longer open."
GENERIC_HINT = "Kraken rejected the request."


class KrakenError(Exception):
    """Base class: a request to Kraken failed. ``errors`` are Kraken's own error strings."""

    hint: str = GENERIC_HINT

    def __init__(
        self,
        method: str,
        errors: Sequence[str] = (),
        *,
        detail: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.method = method
        self.errors: tuple[str, ...] = tuple(errors)
        self.code: str = self.errors[0] if self.errors else ""
        self.detail = detail
        self.http_status = http_status
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [f"Kraken {self.method}:"]
        if self.code:
            parts.append(self.code)
        if self.detail:
            parts.append(f"({self.detail})")
        parts.append("-")
        parts.append(self.hint)
        return " ".join(parts)

    @property
    def transient(self) -> bool:
        """Whether the same idempotent request may succeed if simply sent again later."""
        return False


class AuthenticationError(KrakenError):
    hint = AUTH_HINT


class NonceError(KrakenError):
    hint = NONCE_HINT


class PermissionDeniedError(KrakenError):
    hint = PERMISSION_HINT


class RateLimitError(KrakenError):
    hint = RATE_LIMIT_HINT

    @property
    def transient(self) -> bool:
        return True


class InsufficientFundsError(KrakenError):
    hint = FUNDS_HINT


class InvalidArgumentsError(KrakenError):
    """``field`` names the rejected argument when Kraken says which (``...:ordertype``)."""

    hint = INVALID_ARGUMENTS_HINT

    def __init__(
        self,
        method: str,
        errors: Sequence[str] = (),
        *,
        field: str | None = None,
        detail: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.field = field
        super().__init__(method, errors, detail=detail, http_status=http_status)


class UnknownOrderError(KrakenError):
    """``EOrder:Unknown order`` / ``EOrder:Invalid order``: the same wire string is used for
    ids that never existed and for orders that are already closed (FACTS §2.2)."""

    hint = UNKNOWN_ORDER_HINT


class ServiceUnavailableError(KrakenError):
    """``EService:*``, internal errors, HTTP 5xx and Cloudflare's HTML pages."""

    hint = SERVICE_HINT

    # Market-state answers are not going away by retrying in a second.
    _PERSISTENT = (
        "EService:Market in cancel_only mode",
        "EService:Market in post_only mode",
        "EService:Market in limit_only mode",
    )

    @property
    def transient(self) -> bool:
        return not self.code.startswith(self._PERSISTENT)


class UnknownOutcomeError(KrakenError):
    """A non-idempotent request (AddOrder, Withdraw, ...) was sent and its answer was lost.

    ``reference`` carries the caller's own id from the request (``cl_ord_id``/``userref``) when
    there was one, so the caller can reconcile. Never retried automatically.
    """

    hint = UNKNOWN_OUTCOME_HINT

    def __init__(
        self,
        method: str,
        errors: Sequence[str] = (),
        *,
        reference: str | None = None,
        detail: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.reference = reference
        super().__init__(method, errors, detail=detail, http_status=http_status)


# Prefix → class. Matching picks the longest prefix, so specific entries (``EAuth:Rate limit
# exceeded``) win over broad ones (``EAuth:``).
_PREFIXES: dict[str, type[KrakenError]] = {
    # Authentication (FACTS §2.2, KSDK error-handling.md).
    "EAPI:Invalid key": AuthenticationError,
    "EAPI:Invalid signature": AuthenticationError,
    "EAPI:Invalid token": AuthenticationError,
    "EGeneral:Temporary lockout": AuthenticationError,
    "ESession:Invalid session": AuthenticationError,
    "EAuth:": AuthenticationError,
    # Nonce.
    "EAPI:Invalid nonce": NonceError,
    # Permissions.
    "EGeneral:Permission denied": PermissionDeniedError,
    "EAPI:Permission denied": PermissionDeniedError,
    "EAPI:Feature disabled": PermissionDeniedError,
    "EEarnings:Permission denied": PermissionDeniedError,
    "ETrade:User Locked": PermissionDeniedError,
    # Rate limits (REST counter, Cloudflare, trading counter).
    "EAPI:Rate limit exceeded": RateLimitError,
    "EAuth:Rate limit exceeded": RateLimitError,
    "EAuth:Too many requests": RateLimitError,
    "EGeneral:Too many requests": RateLimitError,
    "EService:Throttled": RateLimitError,
    "EOrder:Rate limit exceeded": RateLimitError,
    "EOrder:Domain rate limit exceeded": RateLimitError,
    # Funds.
    "EOrder:Insufficient funds": InsufficientFundsError,
    "EOrder:Insufficient margin": InsufficientFundsError,
    "EOrder:Margin level too low": InsufficientFundsError,
    "EFunding:Insufficient funds": InsufficientFundsError,
    "EEarnings:Insufficient funds": InsufficientFundsError,
    # Arguments.
    "EGeneral:Invalid arguments": InvalidArgumentsError,
    "EAPI:Bad request": InvalidArgumentsError,
    "EGeneral:Unknown method": InvalidArgumentsError,
    "EQuery:Unknown asset pair": InvalidArgumentsError,
    "EQuery:Invalid asset pair": InvalidArgumentsError,
    "EQuery:Unknown asset": InvalidArgumentsError,
    "EOrder:Order minimum not met": InvalidArgumentsError,
    "EOrder:Cost minimum not met": InvalidArgumentsError,
    "EOrder:Tick size check failed": InvalidArgumentsError,
    "EOrder:Invalid price": InvalidArgumentsError,
    "EFunding:Invalid amount": InvalidArgumentsError,
    "EFunding:Unknown withdraw key": InvalidArgumentsError,
    "EFunding:Unknown asset": InvalidArgumentsError,
    "EFunding:Max fee exceeded": InvalidArgumentsError,
    "EFunding:Invalid reference id": InvalidArgumentsError,
    "EFunding:Unknown reference id": InvalidArgumentsError,
    "EEarnings:Below min": InvalidArgumentsError,
    "EEarnings:Above max": InvalidArgumentsError,
    # Orders that are gone or never existed.
    "EOrder:Unknown order": UnknownOrderError,
    "EOrder:Invalid order": UnknownOrderError,
    # Service.
    "EService:": ServiceUnavailableError,
    "EGeneral:Internal error": ServiceUnavailableError,
    "EDatabase:Internal error": ServiceUnavailableError,
    "EEarnings:Busy": ServiceUnavailableError,
}
_ORDERED_PREFIXES: tuple[str, ...] = tuple(sorted(_PREFIXES, key=len, reverse=True))

# The argument each error is about, when the error string itself does not say.
_FIELD_FOR: dict[str, str] = {
    "EQuery:Unknown asset pair": "pair",
    "EQuery:Invalid asset pair": "pair",
    "EQuery:Unknown asset": "asset",
    "EOrder:Order minimum not met": "volume",
    "EOrder:Cost minimum not met": "volume",
    "EOrder:Tick size check failed": "price",
    "EOrder:Invalid price": "price",
    "EFunding:Invalid amount": "amount",
    "EFunding:Unknown withdraw key": "key",
    "EFunding:Unknown asset": "asset",
    "EFunding:Max fee exceeded": "max_fee",
    "EFunding:Invalid reference id": "refid",
    "EFunding:Unknown reference id": "refid",
    "EEarnings:Below min": "amount",
    "EEarnings:Above max": "amount",
}
_INVALID_ARGUMENTS = "EGeneral:Invalid arguments:"


def error_class(code: str) -> type[KrakenError]:
    """The exception class for one Kraken error string (longest matching prefix)."""
    for prefix in _ORDERED_PREFIXES:
        if code.startswith(prefix):
            return _PREFIXES[prefix]
    return KrakenError


def _field_of(code: str) -> tuple[str | None, str | None]:
    """(field, detail) for an invalid-arguments error string."""
    if code.startswith(_INVALID_ARGUMENTS):
        suffix = code[len(_INVALID_ARGUMENTS) :].strip()
        # ``...:ordertype`` names a field; ``...:Index unavailable`` explains the problem.
        if suffix and " " not in suffix:
            return suffix, None
        return None, suffix or None
    for prefix, name in _FIELD_FOR.items():
        if code.startswith(prefix):
            return name, None
    return None, None


def is_warning(code: str) -> bool:
    return code.startswith("W")


def error_from_codes(method: str, codes: Iterable[str]) -> KrakenError:
    """Build the exception for a Kraken error list (errors first, warnings ignored)."""
    all_codes = [str(c) for c in codes]
    errors = [c for c in all_codes if not is_warning(c)] or all_codes
    code = errors[0] if errors else ""
    cls = error_class(code)
    if cls is InvalidArgumentsError:
        field, detail = _field_of(code)
        return InvalidArgumentsError(method, errors, field=field, detail=detail)
    return cls(method, errors)
