"""The action registry: what a workflow can do when its slot comes. The business apps register
their actions in AppConfig.ready() (funding: fixed withdrawal, fixed transfer, sweep, top-up;
staking: auto-stake), so the scheduler, which sits below them, never imports them.

    from apps.schedules.registry import ActionParamsForm, Decision, Reference, action_register

    class SweepForm(ActionParamsForm):          # the parameters, as a form: one rule set for
        asset = forms.CharField()               # the page (shown next to the field) and the
        keep = forms.DecimalField()             # service (which validates the stored JSON
                                                # through the same form)

    def decide(context: RunContext) -> Decision:        # reads, never writes
        spendable = balances.spendable(account=context.account, asset=context.params["asset"])
        excess = spendable - Decimal(context.params["keep"])
        return Decision(amount=max(excess, Decimal(0)), asset=..., text="Move the 0.2 BTC above
                        the 1 BTC kept", inputs={"spendable BTC": str(spendable)})

    def execute(context: RunContext, decision: Decision) -> Reference:
        request = withdrawal_request(..., amount=decision.amount,
                                     idempotency_key=context.idempotency_key)
        return Reference(label=f"Withdrawal #{request.pk}", url=..., kind="funding.withdrawal",
                         id=str(request.pk))

    action_register("funding.sweep", label="Sweep", form=SweepForm, decide=decide,
                    execute=execute, cap_asset=lambda params: params["asset"],
                    describe=lambda params: f"Keep {params['keep']} {params['asset']}, ...")

The engine (apps.schedules.services) owns everything around the call: the slot claimed once,
the caps (a decision above them is reduced when `divisible`, refused otherwise), the approvals
(the workflow approved once with its caps, or each run), the audit, the notifications and the
live run page. An action only decides and executes.

Contract for `execute`: it is called outside the engine's transaction (so it may open its own
durable transaction) and it must be idempotent per run: after a crash it is called again with
the same `context.idempotency_key` and must return what it created the first time rather than
create it twice. A `ValidationError` it raises is the run's failure, shown to the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms

from apps.orgs.permissions import Capability

if TYPE_CHECKING:
    from apps.approvals.models import ApprovalRequest
    from apps.orgs.models import KrakenAccount, Membership, Organization


class ActionParamsForm(forms.Form):
    """Base of an action's parameter form. It receives the organization and the workflow's
    account (for choices: allow-listed destinations, subaccounts, strategies) and turns its
    cleaned data into the JSON stored on the workflow (`params()`: decimals as strings)."""

    def __init__(
        self,
        *args: Any,
        org: Organization,
        account: KrakenAccount | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.org = org
        self.account = account

    def params(self) -> dict[str, Any]:
        return {name: _jsonable(value) for name, value in self.cleaned_data.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "pk"):
        return value.pk
    return value


@dataclass(frozen=True)
class RunContext:
    """What an action is given: the run's workflow and slot, its account and parameters."""

    run_id: int
    workflow_id: int
    workflow_name: str
    org: Organization
    account: KrakenAccount
    params: dict[str, Any]
    slot: str
    scheduled_at: datetime
    # The member who created the workflow (still a member), for services that need an actor.
    created_by: Membership | None
    # The approval that covers this run, for `execute` (a business app's `preapproved`): the
    # workflow's own (approved once, with its caps, which the engine has applied) or the run's
    # (each run approved). None while deciding.
    approval: ApprovalRequest | None = None

    @property
    def idempotency_key(self) -> str:
        return f"schedules.run:{self.run_id}"


@dataclass(frozen=True)
class Decision:
    """What a run should do. `amount` None or zero means nothing to do (recorded as such)."""

    amount: Decimal | None
    asset: str
    text: str
    # What was read to decide (balances, prices), as strings: recorded on the run.
    inputs: dict[str, str] = field(default_factory=dict)
    # Whether the amount may be reduced to fit the caps (a sweep may move less; a fixed
    # withdrawal of exactly 1 BTC may not).
    divisible: bool = True

    @property
    def nothing_to_do(self) -> bool:
        return self.amount is None or self.amount <= 0


@dataclass(frozen=True)
class Reference:
    """What the action created, linked from the run."""

    label: str
    url: str = ""
    kind: str = ""
    id: str = ""
    # A short outcome text ("Submitted for approval", "Sent"); the label when empty.
    outcome: str = ""

    def as_json(self) -> dict[str, str]:
        return {"label": self.label, "url": self.url, "kind": self.kind, "id": self.id}


@dataclass(frozen=True)
class WorkflowAction:
    key: str
    label: str
    form: type[ActionParamsForm]
    decide: Callable[[RunContext], Decision]
    execute: Callable[[RunContext, Decision], Reference]
    cap_asset: Callable[[dict[str, Any]], str]
    describe: Callable[[dict[str, Any]], str]
    # Who may create or edit a workflow with this action.
    capability: Capability = Capability.REQUEST_FUNDING
    # The parameters whose change voids an approval given once (default: all of them).
    terms: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    help_text: str = ""


_actions: dict[str, WorkflowAction] = {}


def action_register(
    key: str,
    *,
    label: str,
    form: type[ActionParamsForm],
    decide: Callable[[RunContext], Decision],
    execute: Callable[[RunContext, Decision], Reference],
    cap_asset: Callable[[dict[str, Any]], str],
    describe: Callable[[dict[str, Any]], str],
    capability: Capability = Capability.REQUEST_FUNDING,
    terms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    help_text: str = "",
) -> WorkflowAction:
    """Register (or replace: ready() may run twice in tests) the action `key`, named
    "<app label>.<action>" ("funding.sweep", "staking.auto_stake")."""
    action = WorkflowAction(
        key=key,
        label=label,
        form=form,
        decide=decide,
        execute=execute,
        cap_asset=cap_asset,
        describe=describe,
        capability=capability,
        terms=terms,
        help_text=help_text,
    )
    _actions[key] = action
    return action


def action_unregister(key: str) -> None:
    """For tests that register an action of their own."""
    _actions.pop(key, None)


def action_get(key: str) -> WorkflowAction:
    try:
        return _actions[key]
    except KeyError:
        raise LookupError(f"Unknown workflow action {key!r}: register it first.") from None


def action_find(key: str) -> WorkflowAction | None:
    return _actions.get(key)


def actions() -> list[WorkflowAction]:
    return sorted(_actions.values(), key=lambda action: action.label)
