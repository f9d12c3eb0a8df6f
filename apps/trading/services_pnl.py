"""Writes for the P&L: importing an account's opening positions (issue 11 §5).

An account usually held assets before its key was added to the portal. Without them, the FIFO
walk would see the first sell of those assets as a short. The import takes what the account
holds now (exchange's recorded balances, or Kraken's Balance through exchange's private read),
takes away what the recorded
fills have added since (buys) and put back what they took (sells), and records what is left as
one opening lot per asset, valued at the live price at that moment. Imported when the key is
first used, the fills are none and the lot is simply the balance then. Once per account and
asset: a second import changes nothing and says so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core.trail import audit_record
from apps.exchange.balances import account_balances
from apps.exchange.models import AccountBalance, ExchangeFill, WalletType
from apps.exchange.services import private_read
from apps.kraken.naming import WALLET_SPOT, normalize_asset, pair_symbol, split_balance_key
from apps.market.conversion import ConversionError, value_in
from apps.orgs.models import KrakenAccount, Membership
from apps.trading.pnl import pnl_invalidate
from apps.trading.pnl_models import OpeningLot
from apps.vault.models import Use
from apps.vault.selectors import NoCredential, credential_for

ALREADY_IMPORTED = "Opening positions of {account} were already imported: nothing changed."
NOTHING_HELD = "{account} held nothing before its recorded trades: no opening position."
NOT_THIS_ORG = "That account is not one of your organization's."
CANNOT_READ = "Kraken's balances of {account} could not be read: {reason}"


@dataclass(frozen=True)
class ImportResult:
    created: list[OpeningLot]
    skipped: list[str]  # why an asset got no lot (no price)


def opening_quantities(
    *, account: KrakenAccount, balances: dict[str, Decimal]
) -> dict[str, Decimal]:
    """What the account held before its first recorded fill, per base asset: today's spot
    balance minus the recorded fills' net effect. Cash in the organization's reporting currency
    is not a position and is left out by the caller."""
    held: dict[str, Decimal] = defaultdict(Decimal)
    for name, amount in balances.items():
        asset, wallet = split_balance_key(name)
        if wallet == WALLET_SPOT:
            held[asset] += amount
    fills = ExchangeFill.objects.filter(account=account).values_list("pair", "side", "qty")
    for pair, side, qty in fills.iterator(chunk_size=5000):
        try:
            base = pair_symbol(pair).partition("/")[0]
        except ValueError:
            continue
        held[base] += -qty if side == "buy" else qty
    return {asset: qty for asset, qty in held.items() if qty > 0}


@transaction.atomic(durable=True)
def opening_lots_create(
    *, account: KrakenAccount, balances: dict[str, Decimal], actor: Membership
) -> ImportResult:
    """Record the account's opening lots from `balances` (Kraken's names or ours), valued in
    the organization's reporting currency at the live price. Raises ValidationError when they
    were imported already or nothing was held."""
    if account.org_id != actor.org_id:
        raise ValidationError(NOT_THIS_ORG)
    # The account row serialises two imports of the same account.
    KrakenAccount.objects.select_for_update().filter(pk=account.pk).first()
    if OpeningLot.objects.filter(account=account).exists():
        raise ValidationError(ALREADY_IMPORTED.format(account=account.label))
    currency = actor.org.reporting_currency
    quantities = {
        asset: qty
        for asset, qty in opening_quantities(account=account, balances=balances).items()
        if asset != currency
    }
    if not quantities:
        raise ValidationError(NOTHING_HELD.format(account=account.label))
    created, skipped = [], []
    for asset, qty in sorted(quantities.items()):
        try:
            valuation = value_in(asset=asset, quantity=Decimal(1), currency=currency)
        except ConversionError as error:
            skipped.append(error.message)
            continue
        lot = OpeningLot(
            account=account,
            asset=asset,
            qty=qty,
            unit_cost=valuation.value,
            currency=currency,
            priced_by=valuation.route,
            created_by=actor.user,
        )
        lot.full_clean()
        lot.save()
        created.append(lot)
    transaction.on_commit(partial(pnl_invalidate, org_id=account.org_id), robust=True)
    audit_record(
        action="trading.opening_lots_import",
        actor=actor,
        target=account,
        detail={
            "currency": currency,
            "lots": {lot.asset: f"{lot.qty} at {lot.unit_cost}" for lot in created},
            "not_valued": skipped,
        },
    )
    return ImportResult(created=created, skipped=skipped)


def _decimal_balances(answer: Any) -> dict[str, Decimal]:
    balances: dict[str, Decimal] = {}
    for name, amount in (answer or {}).items():
        try:
            balances[str(name)] = Decimal(str(amount))
        except InvalidOperation:
            continue
    return balances


def opening_lots_import(*, account: KrakenAccount, actor: Membership) -> ImportResult:
    """Record the account's opening lots from its spot balances: as exchange last recorded
    them (the private streams keep them current), or, when exchange has none yet, read from
    Kraken with the member's key (or the account's designated one), outside any transaction."""
    if account.org_id != actor.org_id:
        raise ValidationError(NOT_THIS_ORG)
    recorded = account_balances(account=account)
    if recorded:
        balances = {balance.asset: balance.spot for balance in recorded}
        return opening_lots_create(account=account, balances=balances, actor=actor)
    try:
        credential = credential_for(membership=actor, account=account, use=Use.TRADING)
        answer = private_read(credential=credential, method="Balance")
    except NoCredential as error:
        raise ValidationError(CANNOT_READ.format(account=account.label, reason=error)) from None
    except Exception as error:  # a Kraken or network error: say so, change nothing
        reason = getattr(error, "message", None) or type(error).__name__
        raise ValidationError(CANNOT_READ.format(account=account.label, reason=reason)) from None
    return opening_lots_create(account=account, balances=_decimal_balances(answer), actor=actor)


OPENING_LOT_RECORDED = "trading.opening_lot_record"


def opening_lot_from_balance(*, balance: AccountBalance) -> OpeningLot | None:
    """The stream hook for balances: until the account's first fill, what it holds is what it
    held before the portal saw any trade, so each spot balance exchange records (the streams'
    snapshot when the key is first used, then each change, a deposit say) sets that asset's
    opening lot, valued at the live mid then. From the first fill on, lots come from fills and
    the opening lots stay as they were. Cash in the reporting currency is not a position. An
    asset without a live price gets no lot now; its next balance event tries again."""
    if balance.wallet_type != WalletType.SPOT:
        return None
    account = KrakenAccount.objects.select_related("org").get(pk=balance.account_id)
    currency = account.org.reporting_currency
    asset = normalize_asset(balance.asset)
    if asset == currency or ExchangeFill.objects.filter(account=account).exists():
        return None
    with transaction.atomic():
        KrakenAccount.objects.select_for_update().filter(pk=account.pk).first()
        lot = OpeningLot.objects.filter(account=account, asset=asset).first()
        if lot is not None and lot.qty == balance.balance:
            return lot
        if balance.balance <= 0:
            if lot is not None:
                lot.delete()
            return None
        try:
            valuation = value_in(asset=asset, quantity=Decimal(1), currency=currency)
        except ConversionError:
            return lot
        lot = lot or OpeningLot(account=account, asset=asset)
        lot.qty, lot.unit_cost, lot.currency = balance.balance, valuation.value, currency
        lot.priced_by = valuation.route
        lot.full_clean(validate_unique=False)
        lot.save()
        audit_record(
            action=OPENING_LOT_RECORDED,
            org=account.org,
            target=account,
            detail={
                "asset": asset,
                "qty": str(lot.qty),
                "unit_cost": str(lot.unit_cost),
                "currency": currency,
                "source": "balance before the first fill",
            },
        )
        transaction.on_commit(partial(pnl_invalidate, org_id=account.org_id), robust=True)
    return lot
