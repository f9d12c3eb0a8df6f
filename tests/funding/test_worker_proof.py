"""The treasury's exactly-once proof with real parts: approved withdrawals sent by a real Celery
worker (its beat running the exchange reconciler and the treasury's status follower), while
the Kraken sandbox loses Withdraw answers after applying them, answers 5xx before applying
them, and the worker is SIGKILLed mid-send. Each approved withdrawal exists at most once on
the exchange, its status is reconciled and followed to Success, and nothing is sent twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import approval_decide
from apps.exchange.models import UNSETTLED, Kind, Operation, State
from apps.funding.models import Destination, Withdrawal
from apps.funding.services import withdrawal_request
from apps.orgs.models import Membership
from tests.exchange.test_worker_proof import BeatWorker, beat_worker  # noqa: F401 - fixture
from tests.funding.conftest import PRICES, Treasury, set_prices

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

KEYS = ("cold-a", "cold-b", "cold-c", "cold-d", "cold-e")
SETTLE_TIMEOUT = 240.0


def wait_until(condition: Callable[[], bool], timeout: float, what: str, worker: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    rows = list(Withdrawal.objects.values_list("pk", "status", "kraken_status", "error"))
    operations = list(
        Operation.objects.values_list("pk", "kind", "state", "error_code", "reconcile_note")
    )
    pytest.fail(f"Timed out waiting for {what}: {rows} {operations}\n{worker.log()[-3000:]}")


def test_approved_withdrawals_reach_kraken_once_each_under_lost_answers_5xx_and_a_killed_worker(
    beat_worker: BeatWorker,  # noqa: F811 - the imported fixture
    treasury: Treasury,
    treasurer: Membership,
    approver: Membership,
    exchange_sandbox: Any,
    capsys: Any,
) -> None:
    sandbox = exchange_sandbox
    destinations = []
    for key in KEYS:
        address = f"bc1q{key.replace('-', '')}proofaddress"
        sandbox.add_withdraw_address(treasury.desk.account_id, "XBT", key, address)
        with transaction.atomic():
            destinations.append(
                Destination.objects.create(
                    org=treasurer.org,
                    account=treasury.master,
                    asset="XBT",
                    method="Bitcoin",
                    key=key,
                    address=address,
                    status=Destination.Status.ALLOWED,
                    requested_by=treasurer.user,
                )
            )
    sandbox.set_faults(
        [
            # Applied, then the connection dropped: the answer is lost.
            {"kind": "lost_response", "endpoint": "Withdraw", "probability": 0.4},
            # A 502 before the request reaches the engine: nothing happened.
            {"kind": "http_5xx", "endpoint": "Withdraw", "probability": 0.2},
            # Slow, so that the worker is caught mid-send when it is killed.
            {"kind": "latency", "endpoint": "Withdraw", "latency_ms": 600, "probability": 1.0},
        ],
        seed=12,
    )
    withdrawals = []
    for i, destination in enumerate(destinations):
        set_prices(PRICES)  # fresh, so the tier is confirmed at execution
        withdrawal = withdrawal_request(
            requester=treasurer,
            account=treasury.master,
            destination=destination,
            asset="BTC",
            amount=f"0.0{i + 1}",
        )
        approval = ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0)
        approval_decide(
            approval=approval,
            actor=approver,
            verdict="approve",
            fingerprint_seen=approval.fingerprint,
            stepped_up=True,
        )
        withdrawals.append(withdrawal)
    assert Operation.objects.filter(kind=Kind.WITHDRAW).count() == len(KEYS)

    wait_until(
        lambda: Operation.objects.filter(state=State.SENDING).exists(),
        60,
        "a withdrawal being sent",
        beat_worker,
    )
    killed_sending = list(
        Operation.objects.filter(state=State.SENDING).values_list("pk", flat=True)
    )
    beat_worker.kill()
    beat_worker.start()

    wait_until(
        lambda: not Operation.objects.filter(state__in=UNSETTLED).exists(),
        SETTLE_TIMEOUT,
        "every operation to settle",
        beat_worker,
    )
    sandbox.clear_faults()
    sandbox.advance(60)  # Kraken processes what it accepted: Initial → … → Success
    wait_until(
        lambda: (
            not Withdrawal.objects.filter(
                status__in=[
                    Withdrawal.Status.SUBMITTED,
                    Withdrawal.Status.PROCESSING,
                    Withdrawal.Status.ON_HOLD,
                ]
            ).exists()
        ),
        90,
        "every accepted withdrawal to be followed to its end",
        beat_worker,
    )

    on_kraken = treasury.desk.look(sandbox, "WithdrawStatus", {"asset": "XBT"})
    per_key = Counter(w["key"] for w in on_kraken)
    assert all(n <= 1 for n in per_key.values()), per_key  # never twice
    operations = {o.pk: o for o in Operation.objects.filter(kind=Kind.WITHDRAW)}
    done_refids = sorted(o.result["refid"] for o in operations.values() if o.state == State.DONE)
    assert sorted(w["refid"] for w in on_kraken) == done_refids
    for withdrawal in Withdrawal.objects.all():
        operation = operations[withdrawal.operation_id or 0]
        if operation.state == State.DONE:
            assert withdrawal.status == Withdrawal.Status.SUCCESS, withdrawal
            assert withdrawal.refid == operation.result["refid"]
            assert per_key[withdrawal.key] == 1
        else:
            assert withdrawal.status in (Withdrawal.Status.NOT_SENT, Withdrawal.Status.REFUSED)
            assert per_key[withdrawal.key] == 0
    recovered = [
        o for o in operations.values() if o.events.filter(from_state=State.UNKNOWN).exists()
    ]
    with capsys.disabled():
        states = Counter(o.state for o in operations.values())
        print(
            f"\n[treasury proof] withdrawals: {len(operations)}; operation states {dict(states)}; "
            f"killed while SENDING: {killed_sending}; settled by the reconciler from UNKNOWN: "
            f"{len(recovered)}; on Kraken: {len(on_kraken)} (one per DONE operation); "
            f"statuses {dict(Counter(Withdrawal.objects.values_list('status', flat=True)))}"
        )
    assert recovered or killed_sending, "the faults should have left some outcome unknown"
