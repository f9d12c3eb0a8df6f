"""What withdrawals, transfers and the address book share: which key acts, how an amount is
checked and valued, and the messages for bad input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_UP, Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from apps.approvals.models import ApprovalRequest, Policy
from apps.approvals.policies import policy_for
from apps.core import amounts
from apps.kraken.models import Asset
from apps.kraken.naming import normalize_asset
from apps.kraken.selectors import asset_get
from apps.market.conversion import ConversionError, value_in
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.orgs.permissions import Capability
from apps.vault.models import Credential, Use
from apps.vault.selectors import NoCredential, credential_for, designated_credential

AMOUNT_NOT_A_NUMBER = "Enter the amount as a number, for example 0.25."
AMOUNT_NOT_POSITIVE = "The amount must be more than zero."
AMOUNT_TOO_PRECISE = "{asset} amounts have at most {places} decimals."
AMOUNT_TOO_LARGE = "The amount must be less than {limit}."
VALUE_TOO_LARGE = "The amount is worth more than the approvals can record ({currency} {limit})."
UNKNOWN_ASSET = "Kraken lists no asset called “{asset}”."
ACCOUNT_NOT_HERE = "Choose one of this organization's active Kraken accounts."
CANNOT_REQUEST = "Your role cannot request withdrawals or transfers."
PRICE_UNAVAILABLE = (
    "{reason} The approval tier depends on the value, so nothing is requested until the price "
    "is current."
)
DAILY_CAP_REACHED = (
    "Over the organization's daily cap for {asset}: {total} {asset} in the last 24 hours with "
    "this one (workflow runs included), the cap is {cap} {asset}. Nothing is sent."
)
# The caps' window, as the approvals count it (apps.approvals.services: rolling 24 hours).
CAP_WINDOW = timedelta(hours=24)
# Movements that did not and will not move money: not counted against a cap.
NOT_SPENT = ("refused", "not_sent", "rejected", "expired", "cancelled", "voided", "failure")

# Approvals store values with 8 decimals.
VALUE_PLACES = 8
# The largest amount taken (a whole number of digits well inside every amount column: the
# storage columns keep 20 integer digits, the approvals' 20 too); beyond it, a field error
# rather than the database's overflow.
AMOUNT_MAX_INTEGER_DIGITS = 15
# Values are stored by the approvals with 28 digits, 8 of them decimals.
VALUE_MAX_INTEGER_DIGITS = 20


@dataclass(frozen=True)
class Valued:
    value: Decimal
    currency: str
    rate: str  # the rate and its route, frozen in the approval summary
    age_seconds: float


def asset_info(asset: str, *, field: str = "asset") -> Asset:
    try:
        return asset_get(name=asset)
    except Asset.DoesNotExist:
        raise ValidationError({field: UNKNOWN_ASSET.format(asset=asset)}) from None


def clean_amount(value: object, asset: Asset, *, field: str = "amount") -> Decimal:
    """A positive Decimal with no more decimals than Kraken keeps for the asset."""
    try:
        amount = amounts.to_decimal(value if isinstance(value, Decimal | int) else str(value))
    except (TypeError, ValueError):
        raise ValidationError({field: AMOUNT_NOT_A_NUMBER}) from None
    if amount <= 0:
        raise ValidationError({field: AMOUNT_NOT_POSITIVE})
    if amount >= Decimal(10) ** AMOUNT_MAX_INTEGER_DIGITS:
        limit = f"{Decimal(10) ** AMOUNT_MAX_INTEGER_DIGITS:,f}"
        raise ValidationError({field: AMOUNT_TOO_LARGE.format(limit=limit)})
    exponent = amount.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if places > asset.decimals:
        raise ValidationError(
            {field: AMOUNT_TOO_PRECISE.format(asset=asset.symbol, places=asset.decimals)}
        )
    return amount


def daily_cap_check(
    *,
    org: Organization,
    kind: str,
    info: Asset,
    amount: Decimal,
    movements: models.QuerySet[Any],
) -> None:
    """Refuse (next to the amount) a movement of `amount` that takes the organization over the
    daily cap for its asset in the `kind` policy (Approvals → velocity caps). Counts, in the
    last 24 hours, the `kind` approval requests that are or may still be spent (what the
    approvals count) and the `movements` (this kind's Withdrawal or Transfer rows) sent under
    another approval — a workflow's, which the approvals do not see. Call it in the
    transaction that records the movement: it locks the policy, so two at once cannot both
    fit."""
    policy = Policy.objects.select_for_update().filter(org=org, kind=kind).first()
    cap_text = policy.velocity_caps.get(info.symbol) if policy is not None else None
    if cap_text is None:
        return
    cap = Decimal(str(cap_text))
    since = timezone.now() - CAP_WINDOW
    requested = ApprovalRequest.objects.filter(
        org=org,
        kind=kind,
        asset=info.symbol,
        created_at__gt=since,
        status__in=[
            ApprovalRequest.Status.PENDING,
            ApprovalRequest.Status.APPROVED,
            ApprovalRequest.Status.EXECUTED,
        ],
    ).aggregate(total=models.Sum("amount"))["total"] or Decimal(0)
    names = {info.symbol, info.altname or info.symbol, info.kraken_id or info.symbol}
    sent_otherwise = movements.filter(
        org=org, asset__in=names, created_at__gt=since, approval__isnull=False
    ).exclude(approval__kind=kind).exclude(status__in=NOT_SPENT).aggregate(
        total=models.Sum("amount")
    )["total"] or Decimal(0)
    total = requested + sent_otherwise + amount
    if total > cap:
        raise ValidationError(
            {
                "amount": DAILY_CAP_REACHED.format(
                    asset=info.symbol, total=plain(total), cap=plain(cap)
                )
            }
        )


def check_requester(requester: Membership) -> None:
    if not requester.can(Capability.REQUEST_FUNDING):
        raise ValidationError(CANNOT_REQUEST)


def check_account(org: Organization, account: KrakenAccount, *, field: str = "account") -> None:
    if account.org_id != org.pk or not account.is_active:
        raise ValidationError({field: ACCOUNT_NOT_HERE})


def acting_credential(
    *, account: KrakenAccount, requester: Membership | None, unattended: bool
) -> Credential:
    """The funding key that acts on `account`: for an unattended run (a scheduled workflow,
    or no requester) the account's designated funding key; for a person, their own funding key
    on that account, else the designated one. Raises ValidationError with the vault's
    message when there is none."""
    try:
        if unattended or requester is None:
            return designated_credential(account=account, use=Use.FUNDING)
        return credential_for(membership=requester, account=account, use=Use.FUNDING)
    except NoCredential as error:
        raise ValidationError({"account": str(error)}) from None


def valued(*, org: Organization, kind: str, asset: str, amount: Decimal) -> Valued:
    """The amount's value in the currency of the kind's policy thresholds (the organization's
    reporting currency when the policy was written). Fails closed on a stale or missing price:
    the approval tier depends on it."""
    currency = policy_for(org=org, kind=kind).currency
    try:
        valuation = value_in(asset=normalize_asset(asset), quantity=amount, currency=currency)
    except ConversionError as error:
        raise ValidationError({"amount": PRICE_UNAVAILABLE.format(reason=error.message)}) from None
    value = amounts.quantize(valuation.value, VALUE_PLACES)
    if value >= Decimal(10) ** VALUE_MAX_INTEGER_DIGITS:
        limit = f"{Decimal(10) ** VALUE_MAX_INTEGER_DIGITS:,f}"
        raise ValidationError({"amount": VALUE_TOO_LARGE.format(currency=currency, limit=limit)})
    return Valued(
        value=value,
        currency=currency,
        rate=f"{valuation.rate} ({valuation.route})",
        age_seconds=valuation.age_seconds,
    )


def current_value(*, asset: str, amount: Decimal, currency: str) -> Decimal | None:
    """The value now, for the approval's tier re-check at execution (None when no fresh price:
    the handler then refuses, failing closed)."""
    try:
        valuation = value_in(asset=normalize_asset(asset), quantity=amount, currency=currency)
    except ConversionError:
        return None
    return amounts.quantize(valuation.value, VALUE_PLACES)


def fee_cap(fee: Decimal, *, margin: Decimal, places: int) -> Decimal:
    """The maximum fee approved: the previewed fee plus the policy's margin, rounded up to the
    asset's decimals (never below the previewed fee)."""
    return amounts.quantize(fee * (Decimal(1) + margin), places, rounding=ROUND_UP)


def plain(value: Decimal | None) -> str:
    """A Decimal as plain text without trailing zeros (0.00018, not 0.0001800000 or 1.8E-4)."""
    if value is None:
        return ""
    return format(value.normalize(), "f")


def field_errors(error: ValidationError) -> dict[str, list[str]]:
    """A ValidationError as {field: messages} ("__all__" for the general ones)."""
    if hasattr(error, "error_dict"):
        return {field: list(msgs) for field, msgs in error.message_dict.items()}
    return {"__all__": list(error.messages)}
