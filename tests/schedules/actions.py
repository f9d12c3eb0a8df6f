"""`tests.sweep`: a workflow action for the scheduler's own tests, standing in for funding's
sweep until it exists. It reads a pretend balance from Redis (so the test, the Celery worker
and the browser tests' server all see the same one), keeps `keep` of it and "moves" the rest:
executing records the move in Redis once per run (idempotent by the run's key), which the
tests read back. Loaded through settings.SCHEDULES_ACTION_MODULES (kraken_portal/settings/
test.py)."""

from __future__ import annotations

import time
from decimal import Decimal

import redis
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.schedules.registry import (
    ActionParamsForm,
    Decision,
    Reference,
    RunContext,
    action_register,
)

KEY = "tests.sweep"
BALANCES = "tests:schedules:balance"
MOVES = "tests:schedules:moves"
CALLS = "tests:schedules:execute-calls"
APPROVALS = "tests:schedules:approvals"
REFUSE = "The pretend exchange refused the move."


def store() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def balance_set(asset: str, amount: str) -> None:
    store().hset(BALANCES, asset, amount)


def moves() -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in store().hgetall(MOVES).items()}


def execute_calls() -> int:
    return int(store().get(CALLS) or 0)


def reset() -> None:
    store().delete(BALANCES, MOVES, CALLS, APPROVALS)


def approvals_used() -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in store().hgetall(APPROVALS).items()}


class SweepForm(ActionParamsForm):
    asset = forms.CharField(max_length=16)
    keep = forms.DecimalField(min_value=Decimal(0), decimal_places=8, max_digits=28)
    destination = forms.CharField(max_length=64)
    # Milliseconds to wait while deciding, so a page can watch a run at work.
    delay_ms = forms.IntegerField(min_value=0, max_value=5000, required=False)

    def clean_asset(self) -> str:
        return str(self.cleaned_data["asset"]).upper()


def decide(context: RunContext) -> Decision:
    params = context.params
    if params.get("delay_ms"):
        time.sleep(int(params["delay_ms"]) / 1000)
    asset = params["asset"]
    raw = store().hget(BALANCES, asset)
    spendable = Decimal(raw.decode()) if raw is not None else Decimal(0)
    keep = Decimal(params["keep"])
    excess = spendable - keep
    inputs = {f"spendable {asset}": format(spendable, "f"), "keep": format(keep, "f")}
    if excess <= 0:
        return Decision(
            amount=None,
            asset=asset,
            text=(
                f"{format(spendable, 'f')} {asset} spendable, not above the "
                f"{format(keep, 'f')} kept."
            ),
            inputs=inputs,
        )
    return Decision(
        amount=excess,
        asset=asset,
        text=f"Move the {format(excess, 'f')} {asset} above the {format(keep, 'f')} kept.",
        inputs=inputs,
    )


def execute(context: RunContext, decision: Decision) -> Reference:
    client = store()
    client.incr(CALLS)
    if context.params["destination"] == "refuses":
        raise ValidationError(REFUSE)
    if context.params.get("delay_ms"):
        time.sleep(int(context.params["delay_ms"]) / 1000)
    # Idempotent per run: a second call for the same run finds its move already made.
    client.hsetnx(MOVES, context.idempotency_key, f"{decision.amount} {decision.asset}")
    # Which approval covered it (what a business app receives as `preapproved`).
    client.hset(APPROVALS, context.idempotency_key, context.approval.pk if context.approval else "")
    return Reference(
        label=f"Test move of {decision.amount} {decision.asset} to {context.params['destination']}",
        kind="tests.move",
        id=context.idempotency_key,
        outcome=f"Moved {decision.amount} {decision.asset}",
    )


action_register(
    KEY,
    label="Test sweep",
    form=SweepForm,
    decide=decide,
    execute=execute,
    cap_asset=lambda params: str(params["asset"]),
    describe=lambda params: (
        f"Keep {params['keep']} {params['asset']}, move the rest to {params['destination']}"
    ),
    terms=lambda params: {k: v for k, v in params.items() if k != "delay_ms"},
)
