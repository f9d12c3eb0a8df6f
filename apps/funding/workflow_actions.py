"""The treasury's scheduled-workflow actions, registered with apps.schedules' registry in
FundingConfig.ready() (`register()`): a fixed withdrawal, a fixed transfer, a sweep and a top-up.

Each action only decides and executes; the scheduler owns the slot, the caps, the approvals
(the workflow approved once with its caps, or each run) and the run's record. What they share:

- "Spendable" is the exchange's one definition (apps.exchange.balances.spendable): spot less
  holds plus auto-earn. The balance read and its age are the run's inputs.
- A run executes unattended: the treasury's services act with the account's designated
  funding key, on behalf of the workflow's creator (who must still be allowed to request
  funding), with the approval the scheduler hands over as `preapproved` — so an approved-once
  workflow's runs are sent at once, within the caps the scheduler applied, and a run approved
  on its own is sent once that approval is given.
- Idempotent per run: the withdrawal or transfer carries the run's key as its `source`; asked
  again after a lost worker, `execute` returns the one already made.
- A destination removed from the address book pauses the workflows that send to it
  (`destination_removed`, in the removal's transaction).

This module is the only place funding knows about schedules (schedules knows nothing of
funding): keep it that way, so either side can change without the other.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from apps.core.amounts import round_down
from apps.exchange.balances import asset_balance
from apps.exchange.models import AccountBalance
from apps.exchange.services import balances_refresh
from apps.funding.models import Destination, Transfer, Withdrawal
from apps.funding.services.common import asset_info
from apps.funding.services.transfers import transfer_request
from apps.funding.services.withdrawals import withdrawal_request
from apps.kraken.errors import KrakenError
from apps.kraken.naming import normalize_asset
from apps.orgs.models import KrakenAccount
from apps.schedules.registry import (
    ActionParamsForm,
    Decision,
    Reference,
    RunContext,
    action_register,
)
from apps.schedules.services import workflows_pause_using
from apps.vault.selectors import NoCredential

WITHDRAWAL = "funding.withdrawal"
TRANSFER = "funding.transfer"
SWEEP = "funding.sweep"
TOP_UP = "funding.top_up"

NOT_ENOUGH = "Only {spendable} {asset} is spendable on {account}; {amount} {asset} is not sent."
CREATOR_CANNOT = (
    "The workflow's creator is no longer a member who may request funding: nothing is sent."
)
DESTINATION_NOT_ALLOWED = "Choose an allow-listed destination of this account for {asset}."
TARGET_REQUIRED = "Choose an allow-listed destination or one of the organization's accounts."
NOT_A_SUBACCOUNT = "A top-up workflow runs on the subaccount it tops up, from its master."
PAUSED_FOR_DESTINATION = "Paused: its destination “{key}” was removed from the address book."
BALANCES_STALE = (
    "The balances of {account} could not be read now ({reason}) and the last read ({as_of}) is "
    "older than {limit} seconds: nothing is decided on a stale balance."
)

# A run decides on balances read at most this long ago: it reads them again first, and when
# that read fails, refuses unless the stored ones (the private stream's) are this fresh.
BALANCE_MAX_AGE = timedelta(seconds=60)
# The schedules' Run records amounts with 8 decimals (PostgreSQL would round a 9th half away
# from zero: more than there is), so amounts are rounded down to at most 8 places.
RUN_PLACES = 8


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _balances_fresh(account: KrakenAccount, *, sends: bool = True) -> None:
    """Read the account's balances again (BalanceEx + Earn) before deciding; when Kraken or
    the read key is unavailable, go on only if the stored balances are fresh enough. For the
    account receiving a top-up (`sends=False`) the read is best effort: a stale balance there
    can only make the top-up larger, and it stays within what the sender has."""
    try:
        balances_refresh(account=account)
        return
    except (NoCredential, KrakenError) as error:
        reason = str(error) or type(error).__name__
    if not sends:
        return
    newest = AccountBalance.objects.filter(account=account).aggregate(at=Max("updated_at"))["at"]
    if newest is None or timezone.now() - newest > BALANCE_MAX_AGE:
        raise ValidationError(
            BALANCES_STALE.format(
                account=account.label,
                reason=reason,
                as_of=newest.isoformat(timespec="seconds") if newest else "never",
                limit=int(BALANCE_MAX_AGE.total_seconds()),
            )
        )


def _places(asset: str) -> int:
    """The decimals an amount of `asset` is sent with: the asset's, at most the Run's 8."""
    return min(asset_info(asset).decimals, RUN_PLACES)


def _down(amount: Decimal, asset: str) -> Decimal:
    """Rounded down: never more than there is, never more than was asked."""
    return round_down(amount, _places(asset))


def _spendable(
    context: RunContext, account: KrakenAccount, asset: str, *, sends: bool = True
) -> tuple[Decimal, dict[str, str]]:
    _balances_fresh(account, sends=sends)
    balance = asset_balance(account=account, asset=asset)
    as_of = balance.updated_at.isoformat(timespec="seconds") if balance.updated_at else "never read"
    inputs = {
        f"spendable {asset} on {account.label}": _plain(balance.spendable),
        f"balance of {account.label} as of": as_of,
    }
    return balance.spendable, inputs


def _requester(context: RunContext) -> Any:
    if context.created_by is None:
        raise ValidationError(CREATOR_CANNOT)
    return context.created_by


def _destination(context: RunContext, pk: Any) -> Destination:
    destination = Destination.objects.filter(
        pk=pk, org=context.org, account=context.account
    ).first()
    if destination is None or not destination.is_allowed:
        raise ValidationError(DESTINATION_NOT_ALLOWED.format(asset=context.params.get("asset")))
    return destination


def _withdrawal_reference(context: RunContext, withdrawal: Withdrawal) -> Reference:
    waiting = withdrawal.approval_id is not None and (
        context.approval is None or withdrawal.approval_id != context.approval.pk
    )
    return Reference(
        label=f"Withdrawal #{withdrawal.pk}: {_plain(withdrawal.amount)} {withdrawal.asset} to "
        f"{withdrawal.key}",
        url=reverse(
            "funding:withdrawal-detail", kwargs={"org": context.org.slug, "pk": withdrawal.pk}
        ),
        kind=WITHDRAWAL,
        id=str(withdrawal.pk),
        outcome="Withdrawal requested; waiting for its approval"
        if waiting
        else "Withdrawal sent to Kraken",
    )


def _transfer_reference(context: RunContext, transfer: Transfer) -> Reference:
    return Reference(
        label=f"Transfer #{transfer.pk}: {_plain(transfer.amount)} {transfer.asset} from "
        f"{transfer.from_account.label} to {transfer.to_account.label}",
        url=reverse("funding:transfer-list", kwargs={"org": context.org.slug}),
        kind=TRANSFER,
        id=str(transfer.pk),
        outcome="Transfer sent to Kraken" if context.approval else "Transfer requested",
    )


def _withdraw(context: RunContext, destination_pk: Any, decision: Decision) -> Reference:
    existing = Withdrawal.objects.filter(org=context.org, source=context.idempotency_key).first()
    if existing is None:
        assert decision.amount is not None  # noqa: S101 - the scheduler executes only amounts
        existing = withdrawal_request(
            requester=_requester(context),
            account=context.account,
            destination=_destination(context, destination_pk),
            asset=decision.asset,
            amount=decision.amount,
            memo=f"Workflow “{context.workflow_name}”, slot {context.slot}",
            unattended=True,
            preapproved=context.approval,
            source=context.idempotency_key,
        )
    return _withdrawal_reference(context, existing)


def _transfer(
    context: RunContext, from_account: KrakenAccount, to_account: KrakenAccount, decision: Decision
) -> Reference:
    existing = Transfer.objects.filter(org=context.org, source=context.idempotency_key).first()
    if existing is None:
        assert decision.amount is not None  # noqa: S101 - the scheduler executes only amounts
        existing = transfer_request(
            requester=_requester(context),
            from_account=from_account,
            to_account=to_account,
            asset=decision.asset,
            amount=decision.amount,
            memo=f"Workflow “{context.workflow_name}”, slot {context.slot}",
            unattended=True,
            preapproved=context.approval,
            source=context.idempotency_key,
        )
    return _transfer_reference(context, existing)


def _account(context: RunContext, pk: Any) -> KrakenAccount:
    account = KrakenAccount.objects.filter(pk=pk, org=context.org, archived_at__isnull=True).first()
    if account is None:
        raise ValidationError(TARGET_REQUIRED)
    return account


# Forms: the parameters, with their choices from the organization (one rule set for the page and
# for the stored JSON, which the scheduler validates through them).


class _AssetForm(ActionParamsForm):
    asset = forms.CharField(max_length=16, help_text="BTC, ETH, USD…")

    def clean_asset(self) -> str:
        return normalize_asset(str(self.cleaned_data["asset"]).strip())


def _destinations(form: ActionParamsForm) -> list[tuple[str, str]]:
    rows = Destination.objects.filter(org=form.org, status=Destination.Status.ALLOWED)
    if form.account is not None:
        rows = rows.filter(account=form.account)
    return [
        (str(d.pk), f"{d.key} ({d.asset}, {d.account.label})")
        for d in rows.select_related("account")
    ]


def _accounts(form: ActionParamsForm) -> list[tuple[str, str]]:
    rows = KrakenAccount.objects.filter(org=form.org, archived_at__isnull=True)
    return [(str(a.pk), a.label) for a in rows]


class WithdrawalForm(_AssetForm):
    amount = forms.DecimalField(min_value=Decimal("0.00000001"), max_digits=28, decimal_places=8)
    destination = forms.ChoiceField(label="Allow-listed destination")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["destination"].choices = _destinations(self)  # type: ignore[attr-defined]


class TransferForm(_AssetForm):
    amount = forms.DecimalField(min_value=Decimal("0.00000001"), max_digits=28, decimal_places=8)
    to_account = forms.ChoiceField(label="To account")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["to_account"].choices = _accounts(self)  # type: ignore[attr-defined]


class SweepForm(_AssetForm):
    keep = forms.DecimalField(
        min_value=Decimal(0), max_digits=28, decimal_places=8, help_text="Left spendable."
    )
    target = forms.ChoiceField(label="Move the excess to")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(f"destination:{pk}", f"Address {label}") for pk, label in _destinations(self)]
        choices += [(f"account:{pk}", f"Account {label}") for pk, label in _accounts(self)]
        self.fields["target"].choices = choices  # type: ignore[attr-defined]


class TopUpForm(_AssetForm):
    level = forms.DecimalField(
        min_value=Decimal("0.00000001"),
        max_digits=28,
        decimal_places=8,
        help_text="The subaccount's spendable balance to bring it up to, from its master.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.account is not None and self.account.parent_id is None:
            raise ValidationError(NOT_A_SUBACCOUNT)
        return cleaned


# Fixed withdrawal and fixed transfer: the amount is the amount (never reduced to fit a cap).


def withdrawal_decide(context: RunContext) -> Decision:
    asset = context.params["asset"]
    amount = _down(Decimal(context.params["amount"]), asset)
    spendable, inputs = _spendable(context, context.account, asset)
    if amount <= 0:
        return Decision(
            amount=None,
            asset=asset,
            text=f"{_plain(Decimal(context.params['amount']))} {asset} is below the asset's "
            "smallest unit: nothing to send.",
            inputs=inputs,
        )
    if spendable < amount:
        raise ValidationError(
            NOT_ENOUGH.format(
                spendable=_plain(spendable),
                asset=asset,
                account=context.account.label,
                amount=_plain(amount),
            )
        )
    return Decision(
        amount=amount,
        asset=asset,
        text=f"Withdraw {_plain(amount)} {asset}.",
        inputs=inputs,
        divisible=False,
    )


def withdrawal_execute(context: RunContext, decision: Decision) -> Reference:
    return _withdraw(context, context.params["destination"], decision)


def transfer_decide(context: RunContext) -> Decision:
    decision = withdrawal_decide(context)
    to_account = _account(context, context.params["to_account"])
    return Decision(
        amount=decision.amount,
        asset=decision.asset,
        text=f"Transfer {_plain(decision.amount or Decimal(0))} {decision.asset} to "
        f"{to_account.label}.",
        inputs=decision.inputs,
        divisible=False,
    )


def transfer_execute(context: RunContext, decision: Decision) -> Reference:
    return _transfer(
        context, context.account, _account(context, context.params["to_account"]), decision
    )


# Sweep: keep X spendable, move the excess.


def sweep_decide(context: RunContext) -> Decision:
    asset = context.params["asset"]
    keep = Decimal(context.params["keep"])
    spendable, inputs = _spendable(context, context.account, asset)
    inputs["keep"] = _plain(keep)
    excess = _down(spendable - keep, asset)
    if excess <= 0:
        return Decision(
            amount=None,
            asset=asset,
            text=f"{_plain(spendable)} {asset} spendable, not above the {_plain(keep)} kept.",
            inputs=inputs,
        )
    return Decision(
        amount=excess,
        asset=asset,
        text=f"Move the {_plain(excess)} {asset} above the {_plain(keep)} kept.",
        inputs=inputs,
    )


def sweep_execute(context: RunContext, decision: Decision) -> Reference:
    kind, _, pk = str(context.params["target"]).partition(":")
    if kind == "destination":
        return _withdraw(context, pk, decision)
    return _transfer(context, context.account, _account(context, pk), decision)


# Top-up: bring a subaccount's spendable balance up to X from its master.


def top_up_decide(context: RunContext) -> Decision:
    asset = context.params["asset"]
    level = Decimal(context.params["level"])
    sub = context.account
    if sub.parent is None:
        raise ValidationError(NOT_A_SUBACCOUNT)
    spendable, inputs = _spendable(context, sub, asset, sends=False)
    master_spendable, master_inputs = _spendable(context, sub.parent, asset)
    inputs |= master_inputs | {"level": _plain(level)}
    missing = _down(level - spendable, asset)
    if missing <= 0:
        return Decision(
            amount=None,
            asset=asset,
            text=f"{_plain(spendable)} {asset} spendable on {sub.label}, at or above "
            f"{_plain(level)}.",
            inputs=inputs,
        )
    amount = _down(min(missing, master_spendable), asset)
    if amount <= 0:
        raise ValidationError(
            NOT_ENOUGH.format(
                spendable=_plain(master_spendable),
                asset=asset,
                account=sub.parent.label,
                amount=_plain(missing),
            )
        )
    short = "" if amount == missing else f" (all the master has; {_plain(missing)} missing)"
    return Decision(
        amount=amount,
        asset=asset,
        text=f"Top {sub.label} up with {_plain(amount)} {asset} from {sub.parent.label}{short}.",
        inputs=inputs,
    )


def top_up_execute(context: RunContext, decision: Decision) -> Reference:
    sub = context.account
    if sub.parent is None:
        raise ValidationError(NOT_A_SUBACCOUNT)
    return _transfer(context, sub.parent, sub, decision)


def _target_text(params: dict[str, Any]) -> str:
    kind, _, pk = str(params.get("target", "")).partition(":")
    if kind == "destination":
        destination = Destination.objects.filter(pk=pk).first()
        return f"address {destination.key}" if destination else "a removed address"
    account = KrakenAccount.objects.filter(pk=pk).first()
    return f"account {account.label}" if account else "an archived account"


def on_destination_removed(sender: Any, destination: Destination, **kwargs: Any) -> None:
    """`destination_removed` (in the removal's transaction): pause the workflows sending to it."""
    reason = PAUSED_FOR_DESTINATION.format(key=destination.key)
    workflows_pause_using(
        org_id=destination.org_id, match={"destination": str(destination.pk)}, reason=reason
    )
    workflows_pause_using(
        org_id=destination.org_id, match={"target": f"destination:{destination.pk}"}, reason=reason
    )


def register() -> None:
    from apps.funding.signals import destination_removed

    asset = lambda params: str(params["asset"])  # noqa: E731 - the same for all four
    action_register(
        WITHDRAWAL,
        label="Fixed withdrawal",
        form=WithdrawalForm,
        decide=withdrawal_decide,
        execute=withdrawal_execute,
        cap_asset=asset,
        describe=lambda p: f"Withdraw {p['amount']} {p['asset']} to an allow-listed address",
    )
    action_register(
        TRANSFER,
        label="Fixed transfer",
        form=TransferForm,
        decide=transfer_decide,
        execute=transfer_execute,
        cap_asset=asset,
        describe=lambda p: f"Transfer {p['amount']} {p['asset']} to another account",
    )
    action_register(
        SWEEP,
        label="Sweep",
        form=SweepForm,
        decide=sweep_decide,
        execute=sweep_execute,
        cap_asset=asset,
        describe=lambda p: (
            f"Keep {p['keep']} {p['asset']} spendable; move the excess to {_target_text(p)}"
        ),
    )
    action_register(
        TOP_UP,
        label="Top-up from the master",
        form=TopUpForm,
        decide=top_up_decide,
        execute=top_up_execute,
        cap_asset=asset,
        describe=lambda p: f"Bring the spendable {p['asset']} up to {p['level']} from the master",
    )
    destination_removed.connect(on_destination_removed, dispatch_uid="funding.workflows-pause")
