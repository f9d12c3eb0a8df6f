"""Kraken's error strings mapped to typed exceptions.

Kraken answers almost everything with HTTP 200 and ``{"error": ["<severity><category>:<text>"]}``
(FACTS §2.1). The strings carry suffixes (``EGeneral:Invalid arguments:ordertype``,
``EService:Throttled: <timestamp>``), so they are matched by *prefix*, longest prefix first.

One table, ERROR_TABLE, gives each known string its class and, for a non-idempotent call,
whether the answer is a definite refusal or leaves the outcome unknown (then the caller gets
UnknownOutcomeError and must reconcile, never resend). Each row says why.

Messages are built only from Kraken's error code, the method name and our own constants: never
from request parameters, headers or credentials, so an exception can be logged or shown safely.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# User-facing explanations, one per class (tests assert on them).
AUTH_HINT = "Kraken rejected the API credentials (wrong key, wrong secret, or a temporary lockout)."
NONCE_HINT = (
    "Kraken rejected the request nonce. If this API key is also used by other software, give "
    "the portal its own key: nonces from another program may be larger than ours."
)
PERMISSION_HINT = "The API key does not have the permission this request needs."
EARN_NOT_ALLOWED_HINT = (
    "Kraken does not allow this allocation or deallocation on this strategy for the account "
    "(its verification tier is not high enough, or the strategy is restricted for it). The API "
    "key's permissions are not the cause."
)
RATE_LIMIT_HINT = "Kraken's rate limit for this key was reached; try again shortly."
FUNDS_HINT = "The account does not have enough available funds for this request."
INVALID_ARGUMENTS_HINT = "Kraken rejected the request arguments."
SERVICE_HINT = "Kraken is unavailable or overloaded right now."
MARKET_RESTRICTED_HINT = (
    "The market is restricted right now (cancel-only, post-only or limit-only); "
    "see Kraken's system status."
)
UNKNOWN_OUTCOME_HINT = (
    "The request was sent but no answer says whether Kraken carried it out (no answer, a "
    "server error or an internal error). It was not retried; check the account (open/closed "
    "orders, ledgers) before sending it again."
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


class EarnNotAllowedError(KrakenError):
    """``EEarnings:Permission denied``: despite its name, not the key's permission (a key
    without Earn gets ``EGeneral:Permission denied``) but the strategy refusing the operation
    for this account, e.g. ``:The user's tier is not high enough``. Not a PermissionDeniedError,
    so the key check can never read it as a missing key permission."""

    hint = EARN_NOT_ALLOWED_HINT


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

    @property
    def transient(self) -> bool:
        return True


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


class MarketRestrictedError(ServiceUnavailableError):
    """``EService:Market in cancel_only|post_only|limit_only mode``: the market is open but
    takes only some requests (Kraken's SystemStatus says which). Not transient: it lasts
    minutes to hours, so retrying in a second only spends rate budget."""

    hint = MARKET_RESTRICTED_HINT

    @property
    def transient(self) -> bool:
        return False


# --- The classification table -----------------------------------------------------------------


class Outcome(enum.Enum):
    """What an error answer to a non-idempotent call (AddOrder, Withdraw, ...) says about it."""

    # Kraken refused the request: nothing happened, so the caller may decide what to do next.
    REJECTED = "rejected"
    # It may or may not have happened: reconcile by the request's reference, never resend.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ErrorRule:
    """One row of ERROR_TABLE. ``why`` is the row's justification (a test requires one)."""

    prefix: str
    cls: type[KrakenError]
    outcome: Outcome
    why: str
    field: str | None = None  # the request argument the error is about, when the string says not


_REJECTED = Outcome.REJECTED
_UNKNOWN = Outcome.UNKNOWN

# Every Kraken error string the portal knows, matched by prefix (longest first, so
# ``EService:Throttled`` beats the ``EService:`` category row). For a non-idempotent method an
# UNKNOWN row becomes UnknownOutcomeError (the caller reconciles; nothing is resent) and a
# REJECTED row stays the typed error: an answer that names a definite refusal must not be
# reconciled as if it might have worked, or a reconciler would wait for an order that cannot
# exist while the desk thinks it may. Sources: FACTS §2.2 (Kraken's error catalogue, client
# libraries' maps) and §6.2 (what a lost answer means).
#
# The rule for a string that is not in the table: it is still an answer from Kraken, and an
# answer in any category except the two outage categories (EService, EDatabase) is a refusal
# (Kraken validates, authenticates and counts before it acts, and reports what it did in
# ``result``). Only the outage categories describe a failure that may strike after the engine
# acted, so their unlisted strings are UNKNOWN; a string that is not in Kraken's
# ``E<Category>:`` format at all did not come from Kraken's error path and is UNKNOWN too.
ERROR_TABLE: tuple[ErrorRule, ...] = (
    # --- Outages: Kraken cannot say whether it acted. ---
    ErrorRule(
        "EGeneral:Internal error",
        ServiceUnavailableError,
        _UNKNOWN,
        "An internal failure ('contact support'); it may strike after the engine took the order.",
    ),
    ErrorRule(
        "EDatabase:Internal error",
        ServiceUnavailableError,
        _UNKNOWN,
        "Kraken's storage failed; the write may or may not have been committed.",
    ),
    ErrorRule(
        "EService:Unavailable",
        ServiceUnavailableError,
        _UNKNOWN,
        "The engine or API is offline; a front end that lost the engine mid-request says this.",
    ),
    ErrorRule(
        "EService:Busy",
        ServiceUnavailableError,
        _UNKNOWN,
        "Overloaded; no official text says the request was dropped, so it may still run.",
    ),
    ErrorRule(
        "EService:",
        ServiceUnavailableError,
        _UNKNOWN,
        "Any other service message: the outage category, so assume the worst for a write.",
    ),
    ErrorRule(
        "EDatabase:",
        ServiceUnavailableError,
        _UNKNOWN,
        "Any other database message: the outage category, so assume the worst for a write.",
    ),
    # --- Market state: refused before matching (see Kraken's SystemStatus). ---
    ErrorRule(
        "EService:Market in cancel_only mode",
        MarketRestrictedError,
        _REJECTED,
        "The market takes only cancels; new orders are refused before they reach the book.",
    ),
    ErrorRule(
        "EService:Market in post_only mode",
        MarketRestrictedError,
        _REJECTED,
        "The market takes only post-only limit orders; others are refused before matching.",
    ),
    ErrorRule(
        "EService:Market in limit_only mode",
        MarketRestrictedError,
        _REJECTED,
        "The market takes only limit orders; others are refused before matching.",
    ),
    ErrorRule(
        "EService:Deadline elapsed",
        ServiceUnavailableError,
        _REJECTED,
        "The engine dropped the request because its deadline passed before it was matched.",
    ),
    # --- Rate limits: counted and refused before the request is processed. ---
    ErrorRule(
        "EService:Throttled",
        RateLimitError,
        _REJECTED,
        "Kraken throttles the key until the instant it names; the request was not processed.",
    ),
    ErrorRule(
        "EAPI:Rate limit exceeded",
        RateLimitError,
        _REJECTED,
        "The REST call counter is full; Kraken counts before it dispatches.",
    ),
    ErrorRule(
        "EAuth:Rate limit exceeded",
        RateLimitError,
        _REJECTED,
        "The authentication counter is full; refused before dispatch.",
    ),
    ErrorRule(
        "EAuth:Too many requests",
        RateLimitError,
        _REJECTED,
        "The authentication counter is full; refused before dispatch.",
    ),
    ErrorRule(
        "EGeneral:Too many requests",
        RateLimitError,
        _REJECTED,
        "Cloudflare's or Kraken's front-end limiter refused it before it reached the engine.",
    ),
    ErrorRule(
        "EOrder:Rate limit exceeded",
        RateLimitError,
        _REJECTED,
        "The per-pair trading counter is full; the engine refuses the order without placing it.",
    ),
    ErrorRule(
        "EOrder:Domain rate limit exceeded",
        RateLimitError,
        _REJECTED,
        "The account-wide trading counter is full; refused without placing.",
    ),
    # --- Authentication and nonce: checked before anything is done. ---
    ErrorRule("EAPI:Invalid key", AuthenticationError, _REJECTED, "Unknown API key: nothing ran."),
    ErrorRule(
        "EAPI:Invalid signature", AuthenticationError, _REJECTED, "Bad signature: nothing ran."
    ),
    ErrorRule("EAPI:Invalid token", AuthenticationError, _REJECTED, "Bad token: nothing ran."),
    ErrorRule(
        "EGeneral:Temporary lockout",
        AuthenticationError,
        _REJECTED,
        "The key is locked out after bad signatures: nothing ran.",
    ),
    ErrorRule(
        "ESession:Invalid session", AuthenticationError, _REJECTED, "No session: nothing ran."
    ),
    ErrorRule(
        "EAuth:",
        AuthenticationError,
        _REJECTED,
        "Any other authentication failure: refused before dispatch.",
    ),
    ErrorRule(
        "EAPI:Invalid nonce",
        NonceError,
        _REJECTED,
        "The nonce is checked before dispatch, so the request was not processed.",
    ),
    # --- Permissions. ---
    ErrorRule(
        "EGeneral:Permission denied",
        PermissionDeniedError,
        _REJECTED,
        "The key lacks the permission; checked before dispatch.",
    ),
    ErrorRule(
        "EAPI:Permission denied",
        PermissionDeniedError,
        _REJECTED,
        "The key lacks the permission; checked before dispatch.",
    ),
    ErrorRule(
        "EAPI:Feature disabled",
        PermissionDeniedError,
        _REJECTED,
        "The feature is off for this account; refused.",
    ),
    ErrorRule(
        "EEarnings:Permission denied",
        EarnNotAllowedError,
        _REJECTED,
        "The strategy does not allow the operation for this account (its tier); refused.",
    ),
    ErrorRule(
        "ETrade:User Locked",
        PermissionDeniedError,
        _REJECTED,
        "Trading is locked for the account; refused.",
    ),
    # --- Funds: the engine's pre-trade checks refuse without placing. ---
    ErrorRule(
        "EOrder:Insufficient funds",
        InsufficientFundsError,
        _REJECTED,
        "Pre-trade balance check; the order was not placed.",
    ),
    ErrorRule(
        "EOrder:Insufficient margin",
        InsufficientFundsError,
        _REJECTED,
        "Pre-trade margin check; the order was not placed.",
    ),
    ErrorRule(
        "EOrder:Margin level too low",
        InsufficientFundsError,
        _REJECTED,
        "Pre-trade margin check; the order was not placed.",
    ),
    ErrorRule(
        "EFunding:Insufficient funds",
        InsufficientFundsError,
        _REJECTED,
        "Balance check before a withdrawal or transfer is created; nothing moved.",
    ),
    ErrorRule(
        "EEarnings:Insufficient funds",
        InsufficientFundsError,
        _REJECTED,
        "Balance check before an (de)allocation is queued; nothing moved.",
    ),
    # --- Arguments: validation happens before anything is done. ---
    ErrorRule(
        "EGeneral:Invalid arguments",
        InvalidArgumentsError,
        _REJECTED,
        "The payload failed validation; the field follows the last colon when Kraken names it.",
    ),
    ErrorRule("EAPI:Bad request", InvalidArgumentsError, _REJECTED, "Malformed request."),
    ErrorRule("EGeneral:Unknown method", InvalidArgumentsError, _REJECTED, "No such method."),
    ErrorRule(
        "EQuery:Unknown asset pair",
        InvalidArgumentsError,
        _REJECTED,
        "Unknown pair.",
        field="pair",
    ),
    ErrorRule(
        "EQuery:Invalid asset pair",
        InvalidArgumentsError,
        _REJECTED,
        "Invalid pair.",
        field="pair",
    ),
    ErrorRule(
        "EQuery:Unknown asset", InvalidArgumentsError, _REJECTED, "Unknown asset.", field="asset"
    ),
    ErrorRule(
        "EOrder:Order minimum not met",
        InvalidArgumentsError,
        _REJECTED,
        "Below the pair's ordermin; not placed.",
        field="volume",
    ),
    ErrorRule(
        "EOrder:Cost minimum not met",
        InvalidArgumentsError,
        _REJECTED,
        "Below the pair's costmin; not placed.",
        field="volume",
    ),
    ErrorRule(
        "EOrder:Tick size check failed",
        InvalidArgumentsError,
        _REJECTED,
        "Price off the pair's tick; not placed.",
        field="price",
    ),
    ErrorRule(
        "EOrder:Invalid price",
        InvalidArgumentsError,
        _REJECTED,
        "Price refused; not placed.",
        field="price",
    ),
    ErrorRule(
        "EFunding:Invalid amount",
        InvalidArgumentsError,
        _REJECTED,
        "Amount refused; nothing moved.",
        field="amount",
    ),
    ErrorRule(
        "EFunding:Unknown withdraw key",
        InvalidArgumentsError,
        _REJECTED,
        "No such withdrawal address name; nothing moved.",
        field="key",
    ),
    ErrorRule(
        "EFunding:Unknown asset",
        InvalidArgumentsError,
        _REJECTED,
        "Unknown asset; nothing moved.",
        field="asset",
    ),
    ErrorRule(
        "EFunding:Max fee exceeded",
        InvalidArgumentsError,
        _REJECTED,
        "The fee would exceed max_fee, which exists to make Kraken refuse; nothing moved.",
        field="max_fee",
    ),
    ErrorRule(
        "EFunding:Invalid reference id",
        InvalidArgumentsError,
        _REJECTED,
        "Malformed refid; nothing changed.",
        field="refid",
    ),
    ErrorRule(
        "EFunding:Unknown reference id",
        InvalidArgumentsError,
        _REJECTED,
        "No such refid; nothing changed.",
        field="refid",
    ),
    ErrorRule(
        "EEarnings:Below min",
        InvalidArgumentsError,
        _REJECTED,
        "Below the strategy's minimum; nothing moved.",
        field="amount",
    ),
    ErrorRule(
        "EEarnings:Above max",
        InvalidArgumentsError,
        _REJECTED,
        "Above the user's or strategy's limit; nothing moved.",
        field="amount",
    ),
    # --- Orders that are gone or never existed. ---
    ErrorRule(
        "EOrder:Unknown order",
        UnknownOrderError,
        _REJECTED,
        "No open order by that id (never existed, or already closed); nothing changed.",
    ),
    ErrorRule(
        "EOrder:Invalid order",
        UnknownOrderError,
        _REJECTED,
        "Kraken's same string for gone and never-valid ids (FACTS §2.2); nothing changed.",
    ),
    # --- Earn. ---
    ErrorRule(
        "EEarnings:Busy",
        ServiceUnavailableError,
        _REJECTED,
        "Another (de)allocation for the strategy is in progress: this one was refused.",
    ),
)

# The categories whose unlisted strings are UNKNOWN for a write (see the comment above).
OUTAGE_CATEGORIES: frozenset[str] = frozenset({"EService", "EDatabase"})

_BY_PREFIX: dict[str, ErrorRule] = {rule.prefix: rule for rule in ERROR_TABLE}
if len(_BY_PREFIX) != len(ERROR_TABLE):  # pragma: no cover - a mistake in the table above
    raise ImportError("ERROR_TABLE lists a prefix twice")
_ORDERED_PREFIXES: tuple[str, ...] = tuple(sorted(_BY_PREFIX, key=len, reverse=True))
_KRAKEN_FORMAT = re.compile(r"E[A-Za-z]+:")

UNLISTED_ANSWER = ErrorRule(
    "",
    KrakenError,
    _REJECTED,
    "An unlisted string in a non-outage category is still Kraken's refusal.",
)
NOT_KRAKEN_FORMAT = ErrorRule(
    "",
    KrakenError,
    _UNKNOWN,
    "Not in Kraken's E<Category>: format: nothing says Kraken refused the request.",
)
_INVALID_ARGUMENTS = "EGeneral:Invalid arguments:"


def error_rule(code: str) -> ErrorRule:
    """The table row for one Kraken error string (longest matching prefix)."""
    for prefix in _ORDERED_PREFIXES:
        if code.startswith(prefix):
            return _BY_PREFIX[prefix]
    return UNLISTED_ANSWER if _KRAKEN_FORMAT.match(code) else NOT_KRAKEN_FORMAT


def error_class(code: str) -> type[KrakenError]:
    """The exception class for one Kraken error string."""
    return error_rule(code).cls


def outcome_of(codes: Iterable[str]) -> Outcome:
    """UNKNOWN when any error in the answer leaves a write's effect open, else REJECTED."""
    errors = [c for c in codes if not is_warning(c)]
    if not errors or any(error_rule(c).outcome is _UNKNOWN for c in errors):
        return _UNKNOWN
    return _REJECTED


def _field_of(code: str, rule: ErrorRule) -> tuple[str | None, str | None]:
    """(field, detail) for an invalid-arguments error string."""
    if code.startswith(_INVALID_ARGUMENTS):
        suffix = code[len(_INVALID_ARGUMENTS) :].strip()
        # ``...:ordertype`` names a field; ``...:Index unavailable`` explains the problem.
        if suffix and " " not in suffix:
            return suffix, None
        return None, suffix or None
    return rule.field, None


def is_warning(code: str) -> bool:
    return code.startswith("W")


def error_from_codes(
    method: str, codes: Iterable[str], *, idempotent: bool, reference: str | None = None
) -> KrakenError:
    """Build the exception for a Kraken error list (errors first, warnings ignored).

    For a non-idempotent call (``idempotent=False``) whose answer leaves the effect open
    (``outcome_of``), this is UnknownOutcomeError carrying Kraken's strings and ``reference``.
    """
    all_codes = [str(c) for c in codes]
    errors = [c for c in all_codes if not is_warning(c)] or all_codes
    if not idempotent and outcome_of(errors) is _UNKNOWN:
        return UnknownOutcomeError(method, errors, reference=reference)
    code = errors[0] if errors else ""
    rule = error_rule(code)
    if rule.cls is InvalidArgumentsError:
        field, detail = _field_of(code, rule)
        return InvalidArgumentsError(method, errors, field=field, detail=detail)
    return rule.cls(method, errors)
