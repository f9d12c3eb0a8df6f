"""`staking.auto_stake`, the scheduled workflows' action (apps.schedules.registry): keep X of
an asset spendable on the workflow's account and allocate the rest to Earn strategy S.

`decide` only reads: the account's spendable amount by the platform's one definition
(apps.exchange.balances.spendable: spot - holds + auto-earn), read from Kraken first. `execute`
asks through the same service as a treasurer's request (so the queue per account and strategy,
the exchange's exactly-once operation and the follow-up are the same), once per run (the run's
idempotency key), covered by the workflow's approval when it has one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from apps.core.amounts import round_down
from apps.exchange.balances import spendable
from apps.kraken.models import Asset
from apps.kraken.selectors import asset_get
from apps.schedules.models import DECIMAL_PLACES as RUN_PLACES
from apps.schedules.registry import (
    ActionParamsForm,
    Decision,
    Reference,
    RunContext,
    action_register,
)
from apps.staking import earn
from apps.staking.services import balances_current, plain, stake_request_create

KEY = "staking.auto_stake"
NO_ACCOUNT = "Choose the account first: the strategies are the account's."
NOT_ALLOCATABLE = "{account} may not allocate to {strategy}: {why}."
UNKNOWN_STRATEGY = "Kraken offers no Earn strategy {strategy} to {account}."
NO_CREATOR = "The member who set up this workflow is no longer a member; nothing was asked."
NOTHING = "Nothing to allocate."
BELOW_MINIMUM = "{amount} {asset} above what is kept is below the strategy's minimum ({minimum})."


class AutoStakeForm(ActionParamsForm):
    strategy_id = forms.CharField(max_length=64, label="Earn strategy")
    keep = forms.DecimalField(
        max_digits=38, decimal_places=18, min_value=0, label="Keep spendable (in its asset)"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        sid = data.get("strategy_id")
        if not sid:
            return data
        if self.account is None:
            raise ValidationError(NO_ACCOUNT)
        try:
            strategy = earn.strategy_get(self.account, sid)
        except earn.EarnUnavailable as error:
            raise ValidationError(error.message) from None
        if strategy is None:
            self.add_error(
                "strategy_id", UNKNOWN_STRATEGY.format(strategy=sid, account=self.account.label)
            )
        elif not strategy.allocatable:
            self.add_error(
                "strategy_id",
                NOT_ALLOCATABLE.format(
                    account=self.account.label, strategy=sid, why=strategy.why_not
                ),
            )
        else:
            data["asset"] = strategy.asset
        return data


def asset_places(asset: str) -> int | None:
    """Kraken's decimals for `asset` (None when the reference data does not know it)."""
    try:
        return int(asset_get(name=asset).decimals)
    except Asset.DoesNotExist:
        return None


def allocation_amount(excess: Decimal, places: int | None) -> Decimal:
    """What may be allocated out of `excess`: cut DOWN to the asset's decimals and to at most
    the 8 the schedules' Run row stores (PostgreSQL would round a 9th decimal half away from
    zero, so the run would record, and ask for, more than is there)."""
    return round_down(excess, min(places if places is not None else RUN_PLACES, RUN_PLACES))


def decide(context: RunContext) -> Decision:
    params = context.params
    strategy = earn.strategy_get(context.account, str(params["strategy_id"]))
    if strategy is None or not strategy.allocatable:
        raise ValidationError(
            UNKNOWN_STRATEGY.format(strategy=params["strategy_id"], account=context.account.label)
        )
    asset = strategy.asset
    # Read from Kraken now, whatever was read lately: this decides how much money moves, and
    # a deposit since the last read (the streams may not run) must count. One run per slot.
    balances_current(account=context.account, force=True)
    available = spendable(account=context.account, asset=asset)
    keep = Decimal(str(params["keep"]))
    excess = max(available - keep, Decimal(0))
    # Kraken takes amounts at the asset's precision: never more than is there.
    amount = allocation_amount(excess, asset_places(asset))
    inputs = {f"spendable {asset}": plain(available), f"kept {asset}": plain(keep)}
    if amount and amount < strategy.min_allocation:
        text = BELOW_MINIMUM.format(
            amount=plain(amount), asset=asset, minimum=plain(strategy.min_allocation)
        )
        return Decision(amount=Decimal(0), asset=asset, text=text, inputs=inputs)
    if not amount:
        text = f"{plain(available)} {asset} spendable, not above the {plain(keep)} kept."
        return Decision(amount=Decimal(0), asset=asset, text=text, inputs=inputs)
    text = (
        f"Allocate {plain(amount)} {asset} to {strategy.id}, "
        f"keeping {plain(keep)} {asset} spendable"
    )
    return Decision(amount=amount, asset=asset, text=text, inputs=inputs)


def execute(context: RunContext, decision: Decision) -> Reference:
    if context.created_by is None:
        raise ValidationError(NO_CREATOR)
    if decision.amount is None or decision.amount <= 0:
        raise ValidationError(NOTHING)  # the engine never asks for that; say so if it did
    row, message = stake_request_create(
        membership=context.created_by,
        account=context.account,
        strategy_id=str(context.params["strategy_id"]),
        direction="allocate",
        amount=decision.amount,
        idempotency_key=context.idempotency_key,
        preapproved=context.approval,
    )
    return Reference(
        label=f"Earn allocation #{row.pk}",
        url=f"/o/{context.org.slug}/staking/",
        kind="staking.allocate",
        id=str(row.pk),
        outcome=message,
    )


def register() -> None:
    action_register(
        KEY,
        label="Auto-stake",
        form=AutoStakeForm,
        decide=decide,
        execute=execute,
        cap_asset=lambda params: str(params.get("asset", "")),
        describe=lambda params: (
            f"Keep {params.get('keep')} {params.get('asset', '')} spendable, allocate the rest "
            f"to {params.get('strategy_id')}"
        ),
        help_text="Keeps an amount spendable on the account and allocates the rest to an Earn "
        "strategy, once per slot.",
    )
