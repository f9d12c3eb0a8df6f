"""Operations against the real sandbox, in this process (tasks run eagerly on commit):
prepare in the caller's transaction, send once, classify the answer, reconcile lost answers
through the finders, never resend."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.core.amounts import Fees, format_fees
from apps.exchange import services
from apps.exchange.hooks import operation_hook_register
from apps.exchange.models import ExchangeFill, ExchangeOrder, Kind, Operation, State
from apps.kraken.errors import FUNDS_HINT
from apps.orgs.models import Membership
from tests.exchange.conftest import DOT_STRATEGY, WITHDRAW_KEY, Desk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def prepare(
    desk: Desk, owner: Membership, kind: str, params: dict[str, Any], **extra: Any
) -> Operation:
    with transaction.atomic():
        operation = services.operation_prepare(
            org=owner.org,
            credential=desk.credential_for(kind),
            kind=kind,
            params=params,
            requested_by=owner.user,
            **extra,
        )
    operation.refresh_from_db()
    return operation


def limit_buy(volume: str = "0.01", price: str = "1000") -> dict[str, Any]:
    # Far below the market: it rests on the book.
    return {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": Decimal(volume),
        "price": Decimal(price),
    }


def orders_with(desk: Desk, sandbox: Any, cl_ord_id: str) -> int:
    opened = desk.look(sandbox, "OpenOrders", {"cl_ord_id": cl_ord_id})["open"]
    closed = desk.look(sandbox, "ClosedOrders", {"cl_ord_id": cl_ord_id})["closed"]
    return len(opened) + len(closed)


def reconcile_until_settled(operation: Operation, tries: int = 20) -> Operation:
    import time

    for _ in range(tries):
        operation = services.operation_reconcile(operation_id=operation.pk)
        if operation.is_settled:
            return operation
        time.sleep(0.3)
    return operation


def lose(sandbox: Any, method: str, kind: str = "lost_response", count: int = 1) -> None:
    sandbox.set_faults([{"kind": kind, "endpoint": method, "probability": 1.0, "count": count}])


def test_an_order_is_sent_once_on_commit_with_the_portals_cl_ord_id(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    operation = prepare(desk, owner, Kind.ADD_ORDER, limit_buy())

    assert operation.state == State.DONE
    cl_ord_id = operation.reference["cl_ord_id"]
    assert operation.params["cl_ord_id"] == cl_ord_id
    assert operation.result["txid"]
    assert orders_with(desk, exchange_sandbox, cl_ord_id) == 1
    # Exchange's own record of the order, keyed by account and txid, linked to the operation.
    order = ExchangeOrder.objects.get(account=desk.credential.account, cl_ord_id=cl_ord_id)
    assert [order.txid] == operation.result["txid"]
    assert order.operation == operation
    assert (order.vol, order.price, order.side) == (Decimal("0.01"), Decimal("1000"), "buy")
    assert operation.account == desk.credential.account
    # A redelivered task finds nothing to claim and sends nothing.
    assert services.operation_send(operation_id=operation.pk) is None
    assert orders_with(desk, exchange_sandbox, cl_ord_id) == 1
    states = [(e.from_state, e.to_state) for e in operation.events.all()]
    assert states == [("", "prepared"), ("prepared", "sending"), ("sending", "done")]
    actions = set(
        AuditRecord.objects.filter(
            org=owner.org, action__startswith="exchange.operation."
        ).values_list("action", flat=True)
    )
    assert {
        "exchange.operation.prepared",
        "exchange.operation.sending",
        "exchange.operation.done",
    } <= actions


def test_the_trail_records_each_state_change_once_and_nothing_for_the_order_record(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    # Issue 10 §7: intents, decisions and state changes are audited, not every write under them
    # (the order record, later its fills and balance ticks), so the organization's chain head,
    # which serialises its audited writes (bench/audit_bench.py), carries a few rows per
    # operation instead of one per event Kraken streams.
    before = AuditRecord.objects.filter(org=owner.org).count()
    operation = prepare(desk, owner, Kind.ADD_ORDER, limit_buy())
    assert ExchangeOrder.objects.filter(operation=operation).exists()

    trail = list(
        AuditRecord.objects.filter(org=owner.org)
        .order_by("seq")
        .values_list("action", "target_type", "target_id")[before:]
    )
    assert trail == [
        ("exchange.operation.prepared", "exchange.operation", str(operation.pk)),
        ("exchange.operation.sending", "exchange.operation", str(operation.pk)),
        ("exchange.operation.done", "exchange.operation", str(operation.pk)),
    ]


def test_an_operation_rolled_back_with_its_callers_transaction_is_never_sent(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    class Abort(Exception):
        pass

    def business_change_that_fails() -> None:
        with transaction.atomic():
            services.operation_prepare(
                org=owner.org, credential=desk.credential, kind=Kind.ADD_ORDER, params=limit_buy()
            )
            raise Abort

    with pytest.raises(Abort):
        business_change_that_fails()

    assert not Operation.objects.exists()
    assert desk.look(exchange_sandbox, "OpenOrders")["open"] == {}


def test_a_refusal_is_rejected_with_krakens_code_and_the_users_message(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    operation = prepare(desk, owner, Kind.ADD_ORDER, limit_buy(volume="400", price="10000"))

    assert operation.state == State.REJECTED
    assert operation.error_code.startswith("EOrder:Insufficient funds")
    assert operation.error_message == FUNDS_HINT


def test_a_lost_order_answer_is_found_by_cl_ord_id_and_not_resent(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    lose(exchange_sandbox, "AddOrder")
    operation = prepare(desk, owner, Kind.ADD_ORDER, limit_buy())
    assert operation.state == State.UNKNOWN

    operation = reconcile_until_settled(operation)

    assert operation.state == State.DONE
    assert operation.result["cl_ord_id"] == operation.reference["cl_ord_id"]
    assert orders_with(desk, exchange_sandbox, operation.reference["cl_ord_id"]) == 1


def test_a_5xx_before_the_order_was_applied_ends_not_placed_after_spaced_misses(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    lose(exchange_sandbox, "AddOrder", kind="http_5xx")
    operation = prepare(desk, owner, Kind.ADD_ORDER, limit_buy())
    assert operation.state == State.UNKNOWN

    operation = reconcile_until_settled(operation)

    assert operation.state == State.NOT_PLACED
    assert operation.reconcile_misses == 2
    assert orders_with(desk, exchange_sandbox, operation.reference["cl_ord_id"]) == 0
    messages = [e.message for e in operation.events.all()]
    assert "Not found on Kraken (look 1 of 2)" in messages


def test_lost_answers_of_every_kind_are_found_on_kraken(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    sandbox = exchange_sandbox
    resting = prepare(desk, owner, Kind.ADD_ORDER, limit_buy())
    to_cancel = prepare(desk, owner, Kind.ADD_ORDER, limit_buy(price="1100"))
    txid = resting.result["txid"][0]

    cases: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        (Kind.AMEND_ORDER, {"txid": txid, "limit_price": Decimal("1001")}, {}),
        (Kind.CANCEL_ORDER, {"cl_ord_id": to_cancel.reference["cl_ord_id"]}, {}),
        (Kind.WITHDRAW, {"asset": "XBT", "key": WITHDRAW_KEY, "amount": Decimal("0.01")}, {}),
        (
            Kind.ACCOUNT_TRANSFER,
            {"asset": "XBT", "amount": Decimal("0.1"), "from": desk.iiban, "to": desk.sub_iiban},
            {},
        ),
        (
            Kind.EARN_ALLOCATE,
            {"strategy_id": DOT_STRATEGY, "amount": Decimal("10")},
            {"reference": {"asset": "DOT"}},
        ),
    ]
    for kind, params, extra in cases:
        lose(sandbox, kind)
        operation = prepare(desk, owner, kind, params, **extra)
        assert operation.state == State.UNKNOWN, (kind, operation.error_code)
        operation = reconcile_until_settled(operation)
        assert operation.state == State.DONE, (kind, operation.reconcile_note)

    withdrawal = Operation.objects.get(kind=Kind.WITHDRAW)
    withdrawals = desk.look(sandbox, "WithdrawStatus", {"asset": "XBT"})
    assert [w["refid"] for w in withdrawals] == [withdrawal.result["refid"]]
    transfer = Operation.objects.get(kind=Kind.ACCOUNT_TRANSFER)
    ledger = desk.look(sandbox, "Ledgers", {"type": "transfer"})["ledger"]
    assert [e["refid"] for e in ledger.values()] == [transfer.result["transfer_id"]]

    lose(sandbox, "WithdrawCancel")
    cancel = prepare(
        desk, owner, Kind.WITHDRAW_CANCEL, {"asset": "XBT", "refid": withdrawal.result["refid"]}
    )
    assert reconcile_until_settled(cancel).state == State.DONE
    lose(sandbox, "CancelAll")
    assert reconcile_until_settled(prepare(desk, owner, Kind.CANCEL_ALL, {})).state == State.DONE
    assert desk.look(sandbox, "OpenOrders")["open"] == {}


def test_an_alike_withdrawal_cannot_be_prepared_while_one_is_unsettled(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    params = {"asset": "XBT", "key": WITHDRAW_KEY, "amount": Decimal("0.01")}
    lose(exchange_sandbox, "Withdraw")
    first = prepare(desk, owner, Kind.WITHDRAW, params)
    assert first.state == State.UNKNOWN

    with pytest.raises(ValidationError) as refused, transaction.atomic():
        services.operation_prepare(
            org=owner.org, credential=desk.funding, kind=Kind.WITHDRAW, params=params
        )
    assert refused.value.messages == [services.OPERATION_IN_FLIGHT.format(kind="withdrawal")]


def test_an_unknown_operation_stays_unknown_while_kraken_is_down_and_resolves_after(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    lose(exchange_sandbox, "AddOrder")
    operation = prepare(desk, owner, Kind.ADD_ORDER, limit_buy())
    exchange_sandbox.set_status("maintenance")
    try:
        operation = services.operation_reconcile(operation_id=operation.pk)
        assert operation.state == State.UNKNOWN
        assert operation.reconcile_misses == 0
        assert "could not be asked" in operation.reconcile_note
    finally:
        exchange_sandbox.set_status("online")

    assert reconcile_until_settled(operation).state == State.DONE


def test_result_hooks_run_after_commit_with_the_settled_operation(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    seen: list[tuple[str, str, bool]] = []

    def on_done(operation: Operation) -> None:
        seen.append(("done", operation.state, transaction.get_connection().in_atomic_block))

    def on_rejected(operation: Operation) -> None:
        seen.append(("rejected", operation.state, transaction.get_connection().in_atomic_block))

    operation_hook_register(Kind.ADD_ORDER, on_done=on_done, on_rejected=on_rejected)
    prepare(desk, owner, Kind.ADD_ORDER, limit_buy())
    prepare(desk, owner, Kind.ADD_ORDER, limit_buy(volume="400", price="10000"))

    assert seen == [("done", "done", False), ("rejected", "rejected", False)]


def test_validate_only_orders_are_checked_not_placed(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    operation = prepare(desk, owner, Kind.ADD_ORDER, {**limit_buy(), "validate": True})

    assert operation.validate_only
    assert operation.state == State.DONE
    assert "txid" not in (operation.result or {})
    assert desk.look(exchange_sandbox, "OpenOrders")["open"] == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**limit_buy(), "otp": "123456"}, services.SECRET_PARAMETER.format(name="otp")),
        ({**limit_buy(), "volume": 0.5}, services.FLOAT_PARAMETER.format(name="volume")),
        ({"pair": "XBTUSD", "type": "buy"}, "Add order needs the parameter “ordertype”."),
    ],
)
def test_it_refuses_parameters_that_must_not_be_stored_or_cannot_be_found(
    desk: Desk, owner: Membership, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused, transaction.atomic():
        services.operation_prepare(
            org=owner.org, credential=desk.credential, kind=Kind.ADD_ORDER, params=params
        )
    assert refused.value.messages == [message]
    assert not Operation.objects.exists()


def test_an_order_with_a_conditional_close_is_found_by_userref_pair_side_and_volume(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    # Another program's order on the account with the same userref must not be taken for ours.
    params = {
        **limit_buy(),
        "close": {"ordertype": "limit", "price": Decimal("200000")},
        "userref": 4242,
    }
    other = desk.look(
        exchange_sandbox,
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "volume": "0.02",
            "price": "900",
            "userref": 4242,
        },
    )
    lose(exchange_sandbox, "AddOrder")
    operation = prepare(desk, owner, Kind.ADD_ORDER, params)
    assert "cl_ord_id" not in operation.params
    assert operation.reference["userref"] == 4242
    assert operation.state == State.UNKNOWN

    operation = reconcile_until_settled(operation)

    assert operation.state == State.DONE
    assert operation.result["matched_by"] == "userref"
    assert operation.result["txid"] != other["txid"]
    opened = desk.look(exchange_sandbox, "OpenOrders", {"userref": 4242})["open"]
    assert set(opened) == {operation.result["txid"][0], other["txid"][0]}


def test_an_operation_whose_task_was_lost_is_sent_by_the_reconciler(
    desk: Desk, owner: Membership, exchange_sandbox: Any, settings: Any
) -> None:
    settings.EXCHANGE_PREPARED_STALE = 0
    with transaction.atomic():
        operation = services.operation_prepare(
            org=owner.org, credential=desk.credential, kind=Kind.ADD_ORDER, params=limit_buy()
        )
        # The task's message never reaches a worker (a purge, a worker killed holding it).
        transaction.get_connection().run_on_commit.clear()
    operation.refresh_from_db()
    assert operation.state == State.PREPARED

    assert services.operations_reconcile_due() == 1

    operation.refresh_from_db()
    assert operation.state == State.DONE
    assert orders_with(desk, exchange_sandbox, operation.reference["cl_ord_id"]) == 1


def test_an_operation_queued_before_its_requester_was_demoted_is_not_sent(
    desk: Desk, owner: Membership, trader: Membership, exchange_sandbox: Any
) -> None:
    from apps.orgs.services.memberships import membership_change_role
    from apps.vault.services import KEY_ACTOR_NOT_ALLOWED

    with transaction.atomic():
        operation = services.operation_prepare(
            org=owner.org,
            credential=desk.credential,
            kind=Kind.ADD_ORDER,
            params=limit_buy(),
            requested_by=trader.user,
        )
        transaction.get_connection().run_on_commit.clear()  # still queued
    membership_change_role(membership=trader, role="viewer", actor=owner)

    sent = services.operation_send(operation_id=operation.pk)

    assert sent is not None
    operation = sent
    assert operation.state == State.REJECTED
    assert operation.error_message == KEY_ACTOR_NOT_ALLOWED.format(purpose="trade")
    assert orders_with(desk, exchange_sandbox, operation.reference["cl_ord_id"]) == 0


def test_two_keys_on_one_account_share_the_in_flight_slot(
    desk: Desk, owner: Membership, treasurer: Membership, exchange_sandbox: Any
) -> None:
    from tests.exchange.conftest import _permissions, _store

    api_key, secret = exchange_sandbox.create_key(
        desk.account_id, permissions=_permissions("funding")
    )
    treasurers_key = _store(treasurer, desk.funding.account, api_key, secret, "funding")
    params = {"asset": "XBT", "key": WITHDRAW_KEY, "amount": Decimal("0.01")}
    lose(exchange_sandbox, "Withdraw")
    assert prepare(desk, owner, Kind.WITHDRAW, params).state == State.UNKNOWN

    with pytest.raises(ValidationError) as refused, transaction.atomic():
        services.operation_prepare(
            org=owner.org, credential=treasurers_key, kind=Kind.WITHDRAW, params=params
        )
    assert refused.value.messages == [services.OPERATION_IN_FLIGHT.format(kind="withdrawal")]


def test_a_fills_fees_read_as_amounts_per_asset(desk: Desk) -> None:
    fill = ExchangeFill.objects.create(
        account=desk.credential.account,
        trade_id="TQ2AB-CD3EF-GH4IJK",
        pair="XBT/USD",
        side="buy",
        price=Decimal("50000"),
        qty=Decimal("0.01"),
        fees=Fees.of([("USD", "0.26"), ("XBT", "0.0001")]).to_json(),
        executed_at=timezone.now(),
    )
    fill.refresh_from_db()

    assert fill.fee_amounts.quantity("USD") == Decimal("0.26")
    assert format_fees(fill.fee_amounts) == "0.26 USD + 0.0001 XBT"
