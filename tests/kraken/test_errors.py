"""Kraken error strings map to typed exceptions by prefix, with safe messages, and, for a
non-idempotent call, to a rejection or an unknown outcome by one table (errors.ERROR_TABLE)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.kraken import errors as e


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("EAPI:Invalid key", e.AuthenticationError),
        ("EAPI:Invalid signature", e.AuthenticationError),
        ("EGeneral:Temporary lockout", e.AuthenticationError),
        ("EAPI:Invalid nonce", e.NonceError),
        ("EGeneral:Permission denied", e.PermissionDeniedError),
        ("EAPI:Rate limit exceeded", e.RateLimitError),
        ("EOrder:Rate limit exceeded", e.RateLimitError),
        ("EService:Throttled: 1700000000", e.RateLimitError),
        ("EAuth:Rate limit exceeded", e.RateLimitError),
        ("EOrder:Insufficient funds", e.InsufficientFundsError),
        ("EGeneral:Invalid arguments:ordertype", e.InvalidArgumentsError),
        ("EQuery:Unknown asset pair", e.InvalidArgumentsError),
        ("EOrder:Order minimum not met", e.InvalidArgumentsError),
        ("EService:Unavailable", e.ServiceUnavailableError),
        ("EService:Market in cancel_only mode", e.MarketRestrictedError),
        ("EGeneral:Internal error:123", e.ServiceUnavailableError),
        ("EOrder:Unknown order", e.UnknownOrderError),
        ("EFoo:Something new", e.KrakenError),
    ],
)
def test_error_strings_map_to_classes_by_prefix(code: str, cls: type[e.KrakenError]) -> None:
    exc = e.error_from_codes("AddOrder", [code], idempotent=True)
    assert type(exc) is cls
    assert exc.code == code
    assert code in str(exc)
    assert "AddOrder" in str(exc)


def test_invalid_arguments_carry_the_field() -> None:
    exc = e.error_from_codes("AddOrder", ["EGeneral:Invalid arguments:ordertype"], idempotent=False)
    assert isinstance(exc, e.InvalidArgumentsError)
    assert exc.field == "ordertype"
    exc = e.error_from_codes("AddOrder", ["EOrder:Tick size check failed"], idempotent=False)
    assert isinstance(exc, e.InvalidArgumentsError)
    assert exc.field == "price"
    exc = e.error_from_codes(
        "AddOrder", ["EGeneral:Invalid arguments:Index unavailable"], idempotent=False
    )
    assert isinstance(exc, e.InvalidArgumentsError)
    assert exc.field is None
    assert exc.detail == "Index unavailable"


def test_warnings_are_not_mistaken_for_the_error() -> None:
    exc = e.error_from_codes(
        "Balance", ["WGeneral:Something", "EAPI:Invalid nonce"], idempotent=True
    )
    assert isinstance(exc, e.NonceError)


def test_only_passing_failures_are_transient() -> None:
    assert e.ServiceUnavailableError("Balance", ["EService:Unavailable"]).transient
    assert not e.MarketRestrictedError("Balance", ["EService:Market in post_only mode"]).transient
    assert e.RateLimitError("Balance", ["EAPI:Rate limit exceeded"]).transient
    assert not e.NonceError("Balance", ["EAPI:Invalid nonce"]).transient
    assert not e.UnknownOutcomeError("AddOrder", detail="timeout").transient


# --- Rejection or unknown outcome, for the methods that move money -----------------------------

# The answers that leave a write's effect open (issue 9 §2): the request may have been carried
# out, so the caller must reconcile, never resend.
OUTCOME_UNKNOWN = [
    "EGeneral:Internal error",
    "EGeneral:Internal error:5103",
    "EDatabase:Internal error",
    "EService:Unavailable",
    "EService:Busy",
]
# Definite refusals, with the typed error each must stay.
REFUSALS: list[tuple[str, type[e.KrakenError]]] = [
    ("EService:Market in cancel_only mode", e.MarketRestrictedError),
    ("EService:Market in post_only mode", e.MarketRestrictedError),
    ("EService:Market in limit_only mode", e.MarketRestrictedError),
    ("EService:Deadline elapsed", e.ServiceUnavailableError),
    ("EService:Throttled", e.RateLimitError),
    ("EService:Throttled: 1764600000", e.RateLimitError),
    ("EAPI:Rate limit exceeded", e.RateLimitError),
    ("EGeneral:Too many requests", e.RateLimitError),
    ("EOrder:Rate limit exceeded", e.RateLimitError),
    ("EOrder:Domain rate limit exceeded", e.RateLimitError),
    ("EAuth:Rate limit exceeded", e.RateLimitError),
    ("EAPI:Invalid nonce", e.NonceError),
    ("EAPI:Invalid key", e.AuthenticationError),
    ("EGeneral:Permission denied", e.PermissionDeniedError),
    ("EGeneral:Invalid arguments:ordertype", e.InvalidArgumentsError),
    ("EOrder:Insufficient funds", e.InsufficientFundsError),
    ("EOrder:Unknown order", e.UnknownOrderError),
    ("EOrder:Orders limit exceeded", e.KrakenError),
    ("EOrder:Cannot open position", e.KrakenError),
    ("EFunding:Insufficient funds", e.InsufficientFundsError),
    ("EFunding:Max fee exceeded", e.InvalidArgumentsError),
    ("EFunding:Too many addresses", e.KrakenError),
    ("EFunding:No funding method", e.KrakenError),
    ("EEarnings:Busy", e.ServiceUnavailableError),
    (
        "EEarnings:Busy:Another (de)allocation for the same strategy is in progress",
        e.ServiceUnavailableError,
    ),
    (
        "EEarnings:Below min:(De)allocation operation amount less than minimum",
        e.InvalidArgumentsError,
    ),
    ("EEarnings:Permission denied:The user's tier is not high enough", e.EarnNotAllowedError),
]
WRITES = ["AddOrder", "CancelOrder", "Withdraw", "Earn/Allocate", "AccountTransfer"]


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize("code", OUTCOME_UNKNOWN)
def test_an_outage_answer_to_a_write_is_an_unknown_outcome(method: str, code: str) -> None:
    exc = e.error_from_codes(method, [code], idempotent=False, reference="cl_ord_id=desk-1")
    assert type(exc) is e.UnknownOutcomeError
    assert isinstance(exc, e.UnknownOutcomeError)
    assert exc.code == code
    assert exc.reference == "cl_ord_id=desk-1"
    assert "not retried" in str(exc)
    assert not exc.transient


@pytest.mark.parametrize("code", OUTCOME_UNKNOWN)
def test_the_same_outage_answer_to_a_read_is_a_transient_service_error(code: str) -> None:
    exc = e.error_from_codes("Balance", [code], idempotent=True)
    assert type(exc) is e.ServiceUnavailableError
    assert exc.transient


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize(("code", "cls"), REFUSALS)
def test_a_definite_refusal_of_a_write_stays_a_typed_rejection(
    method: str, code: str, cls: type[e.KrakenError]
) -> None:
    exc = e.error_from_codes(method, [code], idempotent=False)
    assert type(exc) is cls
    assert not isinstance(exc, e.UnknownOutcomeError)
    assert e.outcome_of([code]) is e.Outcome.REJECTED


def test_one_outage_string_among_refusals_leaves_the_outcome_open() -> None:
    codes = ["EOrder:Insufficient funds", "EService:Unavailable"]
    exc = e.error_from_codes("AddOrder", codes, idempotent=False)
    assert isinstance(exc, e.UnknownOutcomeError)
    assert exc.errors == tuple(codes)


def test_warnings_do_not_decide_the_outcome() -> None:
    exc = e.error_from_codes(
        "AddOrder", ["WService:Busy", "EOrder:Insufficient funds"], idempotent=False
    )
    assert type(exc) is e.InsufficientFundsError


def test_every_row_of_the_table_says_why_and_no_order_funding_or_earn_row_is_unknown() -> None:
    prefixes = [rule.prefix for rule in e.ERROR_TABLE]
    assert len(prefixes) == len(set(prefixes))
    for rule in e.ERROR_TABLE:
        assert rule.why.strip(), rule.prefix
        assert issubclass(rule.cls, e.KrakenError)
        assert not issubclass(rule.cls, e.UnknownOutcomeError)
        if rule.prefix.startswith(("EOrder:", "EFunding:", "EEarnings:")):
            assert rule.outcome is e.Outcome.REJECTED, rule.prefix
    unknown = {r.prefix for r in e.ERROR_TABLE if r.outcome is e.Outcome.UNKNOWN}
    assert unknown == {
        "EGeneral:Internal error",
        "EDatabase:Internal error",
        "EService:Unavailable",
        "EService:Busy",
        "EService:",
        "EDatabase:",
    }


# Property tests over strings Kraken has never sent: the rule for an unlisted string is that it
# is still Kraken's answer, hence a refusal, unless its category is an outage category.
KNOWN_CATEGORIES = [
    "EGeneral",
    "EAuth",
    "EAPI",
    "EQuery",
    "EOrder",
    "ETrade",
    "EFunding",
    "EEarnings",
    "ESession",
    "EService",
    "EDatabase",
]
REFUSAL_CATEGORIES = {"EOrder", "EFunding", "EEarnings"}
texts = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "Zs")), max_size=60
)
categories = st.one_of(st.sampled_from(KNOWN_CATEGORIES), st.from_regex(r"\AE[A-Z][a-z]{1,10}\Z"))


@given(category=categories, text=texts, method=st.sampled_from(WRITES))
def test_any_kraken_error_string_on_a_write_is_classified_conservatively(
    category: str, text: str, method: str
) -> None:
    code = f"{category}:{text}"
    exc = e.error_from_codes(method, [code], idempotent=False)
    assert isinstance(exc, e.KrakenError)
    assert exc.code == code
    unknown = isinstance(exc, e.UnknownOutcomeError)
    listed_refusal = any(
        code.startswith(prefix) for prefix, _ in REFUSALS if not prefix.endswith(":")
    )
    if category in REFUSAL_CATEGORIES:
        assert not unknown
    elif category in e.OUTAGE_CATEGORIES:
        assert unknown or listed_refusal
    elif category == "EGeneral":
        assert unknown == text.startswith("Internal error")
    else:
        assert not unknown


@given(category=categories, text=texts)
def test_no_error_string_on_a_read_is_an_unknown_outcome(category: str, text: str) -> None:
    exc = e.error_from_codes("Balance", [f"{category}:{text}"], idempotent=True)
    assert not isinstance(exc, e.UnknownOutcomeError)


@given(garbage=st.text(max_size=40).filter(lambda s: not re.match(r"[EW][A-Za-z]+:", s)))
def test_a_string_not_in_krakens_format_leaves_a_write_unknown(garbage: str) -> None:
    exc = e.error_from_codes("AddOrder", [garbage], idempotent=False)
    assert isinstance(exc, e.UnknownOutcomeError)


def test_earns_permission_denied_says_the_strategy_refused_not_the_key() -> None:
    exc = e.error_from_codes(
        "Earn/Allocate",
        ["EEarnings:Permission denied:The user's tier is not high enough"],
        idempotent=False,
    )

    assert type(exc) is e.EarnNotAllowedError
    assert not isinstance(exc, e.PermissionDeniedError)
    assert exc.hint == e.EARN_NOT_ALLOWED_HINT
    assert "The API key's permissions are not the cause." in str(exc)
    # A key without the Earn permission is still told so.
    missing = e.error_from_codes("Earn/Allocate", ["EGeneral:Permission denied"], idempotent=False)
    assert type(missing) is e.PermissionDeniedError
