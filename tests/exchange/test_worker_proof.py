"""The proof, with real parts: a real Celery worker (with its embedded beat running the
reconciler), the Kraken sandbox losing answers (applied, then the connection dropped) and
answering 5xx before applying, and the worker SIGKILLed while operations are SENDING.

A batch of validate-only and real operations of every kind ends with nothing unsettled and
nothing sent twice, checked on the sandbox's side: one order per cl_ord_id, one withdrawal
per operation, one transfer and one Earn ledger entry per operation. Then an operation left
UNKNOWN while the sandbox's private API is down shows on the Operations page and settles by
itself once the sandbox answers again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from apps.exchange import services
from apps.exchange.models import UNSETTLED, Kind, Operation, State
from apps.orgs.models import Membership
from tests.exchange.conftest import DOT_STRATEGY, Desk
from tests.plugins.celery_worker import REPO, _wait_for_ping, sandbox_environment
from tests.vault.conftest import KEK_1

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

XBT_STRATEGY = "ESXUM7H-SJHQ6-KOQNNI"
ETH_STRATEGY = "ESLKQ2J-ZJQNA-5WFHZP"
WRITES = ["AddOrder", "CancelOrder", "Withdraw", "AccountTransfer", "Earn/Allocate"]
SETTLE_TIMEOUT = 240.0


class BeatWorker:
    """`celery worker -B` (the reconciler's beat inside) against the test database and the
    sandbox, restartable after a SIGKILL."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.hostname = ""
        self.logs: list[Path] = []
        self.schedule = Path(tempfile.mkdtemp(prefix="beat-")) / "schedule"

    def start(self) -> None:
        from kraken_portal.celery import app

        self.hostname = f"proof-{uuid.uuid4().hex[:8]}@localhost"
        log = tempfile.NamedTemporaryFile(prefix="proof-worker-", suffix=".log", delete=False)  # noqa: SIM115
        self.logs.append(Path(log.name))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "kraken_portal",
                "worker",
                "-B",
                "--schedule",
                str(self.schedule),
                "--queues",
                "default,orders,funding",
                "--concurrency",
                "1",
                "--pool",
                "prefork",
                "--hostname",
                self.hostname,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait_for_ping(app, self)  # type: ignore[arg-type]  # duck-typed like CeleryWorker

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs)

    @property
    def log_path(self) -> Path:
        return self.logs[-1]

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker, its pool child and beat."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        for path in self.logs:
            path.unlink(missing_ok=True)


@pytest.fixture
def beat_worker(_celery_worker_pool: Any, exchange_sandbox: Any) -> Iterator[BeatWorker]:
    # One worker at a time: the session's plain worker would take our tasks too.
    _celery_worker_pool.close()
    env = {
        **_celery_worker_pool.base_env,
        **sandbox_environment(exchange_sandbox),
        "PORTAL_KEYRING": f"k1:{KEK_1}",
        # The sandbox account's tier, so the client's rate model matches the sandbox's.
        "KRAKEN_TIER": "pro",
        # The reconciler every second, two looks 2 s apart before NOT_PLACED (each operation
        # looked at once per 2 s at most, within the key's REST budget), and a SENDING row
        # stale after 5 + 20 + 3 + 2 = 30 s instead of minutes.
        "EXCHANGE_RECONCILE_EVERY": "1",
        "EXCHANGE_NOT_PLACED_MISSES": "2",
        "EXCHANGE_MISS_SPACING": "2",
        "KRAKEN_HTTP_TIMEOUT": "5",
        "KRAKEN_RATE_MAX_WAIT": "20",
        "KRAKEN_SEQUENCER_WAIT": "3",
        "EXCHANGE_STALE_MARGIN": "2",
        "EXCHANGE_PREPARED_STALE": "5",
        "KRAKEN_RETRY_BASE_DELAY": "0.05",
        "KRAKEN_RETRY_MAX_DELAY": "0.2",
    }
    from kraken_portal.celery import app

    # Tasks that earlier tests of this run enqueued with no worker running (emails, probes)
    # must not queue ahead of this test's operations.
    app.control.purge()
    worker = BeatWorker(env)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def prepare(owner: Membership, desk: Desk, kind: str, params: dict[str, Any], **extra: Any) -> int:
    with transaction.atomic():
        operation = services.operation_prepare(
            org=owner.org,
            credential=desk.credential_for(kind),
            kind=kind,
            params=params,
            requested_by=owner.user,
            **extra,
        )
    return operation.pk


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, worker: BeatWorker
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    states = Counter(Operation.objects.values_list("state", flat=True))
    stuck = [
        (o.pk, o.kind, o.state, o.error_code, o.reconcile_attempts, o.reconcile_note)
        for o in Operation.objects.filter(state__in=UNSETTLED)
    ]
    # Each operation's journey, so a timeout says what happened instead of what did not.
    journeys = {
        o.pk: [f"{e.from_state or '-'}>{e.to_state}: {e.message}" for e in o.events.all()]
        for o in Operation.objects.prefetch_related("events").order_by("-pk")[:5]
    }
    pytest.fail(
        f"Timed out waiting for {what}; states {dict(states)}; unsettled {stuck}\n"
        f"latest operations' events: {journeys}\n"
        f"{worker.log()[-3000:]}"
    )


def unsettled() -> int:
    return Operation.objects.filter(state__in=UNSETTLED).count()


def limit_buy(price: str, *, validate: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": Decimal("0.01"),
        "price": Decimal(price),
    }
    if validate:
        params["validate"] = True
    return params


# Why this test was flaky in full-suite runs (it was skipped for a while): it waited for its
# Withdraw to be UNKNOWN while Kraken was still up for reads. The beat runs the reconciler every
# second and an UNKNOWN operation is looked at at once, so WithdrawStatus found the (applied)
# withdrawal and settled it DONE about a second after the answer was lost. Alone, the test's
# 0.25 s polling caught the short UNKNOWN; in a full run on a loaded machine it often did not,
# and it then waited for an UNKNOWN that was already DONE ("answered normally"). Now the reads
# that could find it are down from the start, so UNKNOWN lasts until the test lets Kraken answer.
def test_an_operation_unknown_while_kraken_is_down_shows_on_the_page_and_settles_by_itself(
    beat_worker: BeatWorker,
    exchange_sandbox: Any,
    owner: Membership,
    client_for: Callable[[Membership], Client],
    desk: Desk,
) -> None:
    sandbox = exchange_sandbox
    # Every Withdraw answer is lost (applied, then the connection dropped), and WithdrawStatus,
    # the finder's only way to see it, answers "EService:Unavailable".
    sandbox.set_faults(
        [
            {"kind": "lost_response", "endpoint": "Withdraw"},
            {"kind": "unavailable", "endpoint": "WithdrawStatus"},
        ]
    )
    pk = prepare(
        owner,
        desk,
        Kind.WITHDRAW,
        {"asset": "XBT", "key": "cold-wallet", "amount": Decimal("0.02")},
    )
    try:
        wait_until(
            lambda: Operation.objects.get(pk=pk).state == State.UNKNOWN, 60, "UNKNOWN", beat_worker
        )
        # Then the whole private API goes down (maintenance) before the faults are lifted, so
        # there is no moment in which the reconciler could ask.
        sandbox.set_status("maintenance")
    finally:
        sandbox.clear_faults()
    try:
        # The reconciler looks (beat, every second) but cannot decide while Kraken is down.
        wait_until(
            lambda: Operation.objects.get(pk=pk).reconcile_attempts >= 2,
            60,
            "reconciliation attempts",
            beat_worker,
        )
        operation = Operation.objects.get(pk=pk)
        assert operation.state == State.UNKNOWN
        assert operation.reconcile_misses == 0
        page = client_for(owner).get(f"/o/{owner.org.slug}/operations/")
        assert page.status_code == 200
        html = page.content.decode()
        assert f'id="operation-{pk}"' in html
        assert 'data-state="unknown"' in html
        assert "could not be asked" in html
    finally:
        sandbox.set_status("online")

    wait_until(lambda: Operation.objects.get(pk=pk).state == State.DONE, 60, "DONE", beat_worker)
    operation = Operation.objects.get(pk=pk)
    withdrawals = desk.look(sandbox, "WithdrawStatus", {"asset": "XBT"})
    assert [w["refid"] for w in withdrawals] == [operation.result["refid"]]
    html = client_for(owner).get(f"/o/{owner.org.slug}/operations/").content.decode()
    assert "Nothing in flight" in html


def test_a_batch_under_lost_answers_5xx_and_a_killed_worker_settles_once_each(
    beat_worker: BeatWorker, exchange_sandbox: Any, owner: Membership, capsys: Any
) -> None:
    sandbox = exchange_sandbox
    from tests.exchange.conftest import make_desk

    desk = make_desk(sandbox, owner)
    for key in ("cold-1", "cold-2", "cold-3"):
        sandbox.add_withdraw_address(desk.account_id, "XBT", key, f"bc1q{key}portal")
    sandbox.set_faults(
        [
            # Applied, then the connection is dropped: the answer is lost.
            {"kind": "lost_response", "endpoint": WRITES, "probability": 0.3},
            # A Cloudflare 502 before the request reaches the engine: nothing happened.
            {"kind": "http_5xx", "endpoint": WRITES, "probability": 0.15},
            # Slow writes, so that the worker is caught mid-send when it is killed.
            {"kind": "latency", "endpoint": WRITES, "latency_ms": 400, "probability": 1.0},
        ],
        seed=10,
    )

    # Phase 1: orders (real and validate-only), withdrawals, transfers, allocations.
    ids: list[int] = []
    for i in range(8):
        ids.append(prepare(owner, desk, Kind.ADD_ORDER, limit_buy(f"{1000 + i}")))
    for i in range(4):
        ids.append(prepare(owner, desk, Kind.ADD_ORDER, limit_buy(f"{2000 + i}", validate=True)))
    for i, key in enumerate(("cold-1", "cold-2", "cold-3")):
        ids.append(
            prepare(
                owner,
                desk,
                Kind.WITHDRAW,
                {"asset": "XBT", "key": key, "amount": Decimal("0.01") + Decimal(i) / 1000},
            )
        )
    for asset, amount in (("XBT", "0.1"), ("USD", "100"), ("DOT", "5")):
        ids.append(
            prepare(
                owner,
                desk,
                Kind.ACCOUNT_TRANSFER,
                {
                    "asset": asset,
                    "amount": Decimal(amount),
                    "from": desk.iiban,
                    "to": desk.sub_iiban,
                },
            )
        )
    for strategy, asset, amount in (
        (DOT_STRATEGY, "DOT", "10"),
        (XBT_STRATEGY, "XBT", "0.05"),
        (ETH_STRATEGY, "ETH", "0.5"),
    ):
        ids.append(
            prepare(
                owner,
                desk,
                Kind.EARN_ALLOCATE,
                {"strategy_id": strategy, "amount": Decimal(amount)},
                reference={"asset": asset},
            )
        )

    # Kill the worker (and its beat) while something is being sent, then start a new one.
    wait_until(
        lambda: Operation.objects.filter(state=State.SENDING).exists(),
        60,
        "an operation being sent",
        beat_worker,
    )
    killed_sending = list(
        Operation.objects.filter(state=State.SENDING).values_list("pk", flat=True)
    )
    beat_worker.kill()
    beat_worker.start()

    wait_until(lambda: unsettled() == 0, SETTLE_TIMEOUT, "phase 1 to settle", beat_worker)

    # Phase 2: cancel the orders that were placed, under the same faults.
    placed = Operation.objects.filter(kind=Kind.ADD_ORDER, validate_only=False, state=State.DONE)
    for operation in placed:
        ids.append(prepare(owner, desk, Kind.CANCEL_ORDER, {"txid": operation.result["txid"][0]}))
    wait_until(lambda: unsettled() == 0, SETTLE_TIMEOUT, "phase 2 to settle", beat_worker)
    sandbox.clear_faults()

    operations = list(Operation.objects.filter(pk__in=ids))
    counts = Counter((o.kind, o.state) for o in operations)
    recovered = [o for o in operations if o.events.filter(from_state=State.UNKNOWN).exists()]
    # Nothing unsettled.
    assert unsettled() == 0

    # One order per cl_ord_id on the sandbox, and only for the orders that are DONE.
    orders = {
        **desk.look(sandbox, "OpenOrders")["open"],
        **desk.look(sandbox, "ClosedOrders")["closed"],
    }
    per_client_id = Counter(order.get("cl_ord_id") for order in orders.values())
    assert all(n == 1 for n in per_client_id.values()), per_client_id
    adds = [o for o in operations if o.kind == Kind.ADD_ORDER and not o.validate_only]
    for operation in adds:
        expected = 1 if operation.state == State.DONE else 0
        assert per_client_id.get(operation.reference["cl_ord_id"], 0) == expected, operation
    assert len(orders) == sum(1 for o in adds if o.state == State.DONE)
    validated = [o for o in operations if o.validate_only]
    assert all(o.state in (State.DONE, State.REJECTED) for o in validated)
    # Every cancel that is DONE left its order cancelled; none left open.
    for operation in operations:
        if operation.kind == Kind.CANCEL_ORDER and operation.state == State.DONE:
            assert orders[operation.params["txid"]]["status"] == "canceled"
    assert desk.look(sandbox, "OpenOrders")["open"] == {} or any(
        o.kind == Kind.CANCEL_ORDER and o.state != State.DONE for o in operations
    )

    # One withdrawal per DONE withdrawal operation, none for the others.
    withdrawals = desk.look(sandbox, "WithdrawStatus", {"asset": "XBT"})
    done_refids = sorted(
        o.result["refid"] for o in operations if o.kind == Kind.WITHDRAW and o.state == State.DONE
    )
    assert sorted(w["refid"] for w in withdrawals) == done_refids

    # One transfer ledger entry per DONE transfer.
    transfers = desk.look(sandbox, "Ledgers", {"type": "transfer"})["ledger"]
    done_transfers = sorted(
        o.result["transfer_id"]
        for o in operations
        if o.kind == Kind.ACCOUNT_TRANSFER and o.state == State.DONE
    )
    assert sorted(e["refid"] for e in transfers.values()) == done_transfers

    # One Earn allocation entry per DONE allocation.
    earn = desk.look(sandbox, "Ledgers", {"type": "earn"})["ledger"]
    # An allocation debits the spot wallet at once (negative); when it settles the earn
    # wallet's own entry (positive) follows, so only the debits count allocations.
    allocations = [
        e for e in earn.values() if e["subtype"] == "allocation" and Decimal(e["amount"]) < 0
    ]
    assert len(allocations) == sum(
        1 for o in operations if o.kind == Kind.EARN_ALLOCATE and o.state == State.DONE
    ), (
        allocations,
        [
            (o.kind, o.state, o.params, o.result, o.error_code, [e.message for e in o.events.all()])
            for o in operations
            if o.kind == Kind.EARN_ALLOCATE
        ],
    )

    with capsys.disabled():
        print("\n[exchange proof] operations:", len(operations))
        for (kind, state), n in sorted(counts.items()):
            print(f"[exchange proof]   {kind:16} {state:11} {n}")
        print(
            f"[exchange proof] killed while SENDING: {killed_sending}; "
            f"resolved by the reconciler from UNKNOWN: {len(recovered)}; "
            f"orders on the sandbox: {len(orders)} (one per cl_ord_id), "
            f"withdrawals: {len(withdrawals)}, transfers: {len(transfers)}, "
            f"Earn allocations: {len(allocations)}"
        )
        rejected = [(o.kind, o.error_code) for o in operations if o.state == State.REJECTED]
        print(f"[exchange proof] rejected by Kraken (a definite answer): {rejected}")
    assert recovered, "the faults should have left some outcomes unknown"
