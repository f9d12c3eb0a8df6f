"""Pre-trade risk limits per organization, account and member (each refusal explained and
audited), amend and cancel as exchange operations, NOT_PLACED never resent, and a demoted
trader's queued order not sent."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.exchange import services as exchange
from apps.exchange.models import ExchangeOrder, Kind, Operation, State
from apps.orgs.models import Membership
from apps.trading import outcomes, risk, rules, services
from apps.trading.models import DeskSettings, Order, OrderEvent, OrderState, RiskLimit
from apps.vault.models import Credential
from tests.trading.conftest import TradingDesk, limit_ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def refused(membership: Membership, ticket: rules.Ticket) -> dict[str, list[str]]:
    with pytest.raises(services.OrderRefused) as error:
        services.order_submit(membership=membership, ticket=ticket)
    return error.value.check.errors


def refusal_count(org: Any) -> int:
    return AuditRecord.objects.filter(org=org, action="trading.order.refused").count()


def test_max_order_notional_refuses_a_larger_order(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    RiskLimit.objects.create(org=trader.org, max_order_notional=Decimal("5"))

    # 0.01 BTC at 1000 USD = 10 USD.
    errors = refused(trader, limit_ticket(trading_desk.account))

    assert errors["quantity"] == [
        risk.ORDER_NOTIONAL.format(
            value="10.00", limit="5.00", currency="USD", scope="organization"
        )
    ]
    assert refusal_count(trader.org) == 1


def test_max_daily_notional_counts_the_members_orders_of_the_business_day_on_the_pair(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    RiskLimit.objects.create(org=trader.org, member=trader, max_daily_notional=Decimal("25"))
    services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    # Yesterday's order does not count.
    Order.objects.filter(placed_by=trader).update(
        created_at=timezone.now() - timezone.timedelta(days=2)
    )
    services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))

    errors = refused(trader, limit_ticket(trading_desk.account))

    assert errors["quantity"] == [
        risk.DAILY_NOTIONAL.format(
            pair="BTC/USD", value="30.00", limit="25.00", currency="USD", scope="your limit"
        )
    ]


def test_open_exposure_and_open_orders_limits_count_live_orders_on_the_account(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    limit = RiskLimit.objects.create(
        org=trader.org, account=trading_desk.account, max_open_exposure=Decimal("15")
    )
    services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    errors = refused(trader, limit_ticket(trading_desk.account))
    assert errors["quantity"][0].startswith("Open orders on BTC/USD would reach 20.00 USD")

    limit.max_open_exposure = None
    limit.max_open_orders = 1
    limit.save()
    errors = refused(trader, limit_ticket(trading_desk.account))
    assert errors["__all__"] == [risk.OPEN_ORDERS.format(count=1, scope="account")]


def test_allowed_pairs_and_order_types_refuse_the_others(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    RiskLimit.objects.create(
        org=trader.org, allowed_pairs=["ETH/USD"], allowed_order_types=["market"]
    )

    errors = refused(trader, limit_ticket(trading_desk.account))

    assert errors["pair"] == [risk.PAIR_NOT_ALLOWED.format(pair="BTC/USD", scope="organization")]
    assert errors["order_type"] == [
        risk.TYPE_NOT_ALLOWED.format(order_type="Limit", scope="organization")
    ]


def test_the_price_band_refuses_a_price_far_from_the_last_trade(
    trading_desk: TradingDesk, trader: Membership, market_keys: Any
) -> None:
    RiskLimit.objects.create(org=trader.org, price_band_pct=Decimal("10"))
    errors = refused(trader, limit_ticket(trading_desk.account))
    assert errors["price"] == [risk.NO_PRICE_FOR_BAND.format(scope="organization")]

    market_keys.book("BTC/USD", last="2000")
    errors = refused(trader, limit_ticket(trading_desk.account))
    assert errors["price"] == [
        risk.PRICE_BAND.format(distance="50.00", last="2000", band="10", scope="organization")
    ]

    order = services.order_submit(
        membership=trader, ticket=limit_ticket(trading_desk.account, price="1900")
    )
    assert order.price == Decimal("1900")


def test_an_order_far_from_the_market_asks_for_a_confirmation_first(
    trading_desk: TradingDesk, trader: Membership, market_keys: Any
) -> None:
    market_keys.book("BTC/USD", last="2000")
    DeskSettings.objects.create(org=trader.org, confirm_band_pct=Decimal("5"))

    errors = refused(trader, limit_ticket(trading_desk.account, confirmed=False))

    assert errors == {"confirmed": [rules.CONFIRM_BOTH]}
    assert refusal_count(trader.org) == 0  # asking is not refusing
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    assert order.pk


def test_relative_prices_resolve_against_the_last_trade_on_the_tick(
    trading_desk: TradingDesk, trader: Membership, market_keys: Any
) -> None:
    market_keys.book("BTC/USD", last="2000")

    order = services.order_submit(
        membership=trader, ticket=limit_ticket(trading_desk.account, price="-50%")
    )

    assert order.price == Decimal("1000")
    assert order.price_text == "-50%"


def test_a_traders_amend_and_cancel_are_exchange_operations_with_history(
    trading_desk: TradingDesk, trader: Membership, exchange_sandbox: Any
) -> None:
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    order.refresh_from_db()

    amend = services.order_amend(membership=trader, order=order, price="1001")

    assert amend.kind == Kind.AMEND_ORDER
    amend.refresh_from_db()
    assert amend.state == State.DONE
    order.refresh_from_db()
    assert order.price == Decimal("1001")
    on_kraken = trading_desk.look(exchange_sandbox, "QueryOrders", {"txid": order.txid})
    assert Decimal(on_kraken[order.txid]["descr"]["price"]) == Decimal("1001")

    cancel = services.order_cancel(membership=trader, order=order)
    cancel.refresh_from_db()
    assert cancel.state == State.DONE
    order.refresh_from_db()
    assert order.state == OrderState.CANCELED
    assert list(order.events.values_list("kind", flat=True)) == [
        OrderEvent.Kind.SUBMITTED,
        OrderEvent.Kind.PLACED,
        OrderEvent.Kind.AMEND_REQUESTED,
        OrderEvent.Kind.AMENDED,
        OrderEvent.Kind.CANCEL_REQUESTED,
        OrderEvent.Kind.CANCELED,
    ]


def test_an_amended_order_counts_at_its_amended_size_against_the_open_exposure_limit(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    RiskLimit.objects.create(
        org=trader.org, account=trading_desk.account, max_open_exposure=Decimal("100")
    )
    # 0.01 BTC at 1000 USD = 10 USD.
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    order.refresh_from_db()
    assert order.notional_reporting == Decimal("10")

    # The amend itself is valued at its new size: 0.11 BTC = 110 USD breaks the limit.
    with pytest.raises(services.OrderRefused) as error:
        services.order_amend(membership=trader, order=order, quantity=Decimal("0.11"))
    assert error.value.check.errors["quantity"][0].startswith(
        "Open orders on BTC/USD would reach 110.00 USD"
    )

    # 0.1 BTC = 100 USD is within it (the order itself is not counted twice).
    amend = services.order_amend(membership=trader, order=order, quantity=Decimal("0.1"))
    amend.refresh_from_db()
    assert amend.state == State.DONE
    order.refresh_from_db()
    assert order.volume == Decimal("0.1")
    assert order.notional == Decimal("100")
    assert order.notional_reporting == Decimal("100")

    # A new 90 USD order would bring the open exposure to 190 USD: refused (counting the
    # amended order at its submit-time 10 USD would have let it through at exactly 100).
    errors = refused(trader, limit_ticket(trading_desk.account, quantity=Decimal("0.09")))
    assert errors["quantity"] == [
        risk.OPEN_EXPOSURE.format(
            pair="BTC/USD", value="190.00", limit="100.00", currency="USD", scope="account"
        )
    ]


def test_a_stream_sync_of_a_new_volume_revalues_the_notional_the_limits_count(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    order.refresh_from_db()
    # Exchange's record of it after an amend made elsewhere (the stream's view).
    exchange_order = ExchangeOrder(
        txid=order.txid,
        status="open",
        vol=Decimal("0.05"),
        vol_exec=Decimal(0),
        price=Decimal("1200"),
    )

    assert outcomes.order_apply_exchange_status(order, exchange_order)

    order.refresh_from_db()
    assert order.notional == Decimal("60")
    assert order.notional_reporting == Decimal("60")


def test_only_the_placer_may_amend_or_cancel(
    trading_desk: TradingDesk, trader: Membership, owner: Membership
) -> None:
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    order.refresh_from_db()

    with pytest.raises(PermissionDenied):
        services.order_amend(membership=owner, order=order, price="1002")
    with pytest.raises(PermissionDenied):
        services.order_cancel(membership=owner, order=order)


def test_an_amend_during_a_halt_is_refused_but_a_cancel_goes_through(
    trading_desk: TradingDesk, trader: Membership, owner: Membership
) -> None:
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    order.refresh_from_db()
    services.kill_switch_activate(membership=owner, cancel_all=False)

    with pytest.raises(services.OrderRefused):
        services.order_amend(membership=trader, order=order, price="1002")
    cancel = services.order_cancel(membership=trader, order=order)

    cancel.refresh_from_db()
    assert cancel.state == State.DONE
    assert AuditRecord.objects.filter(action="trading.order.amend_refused").count() == 1


def _reconcile_until_settled(operation: Operation) -> Operation:
    for _ in range(30):
        operation = exchange.operation_reconcile(operation_id=operation.pk)
        if operation.is_settled:
            return operation
        time.sleep(0.3)
    return operation


def test_a_submission_that_ends_not_placed_shows_so_and_is_never_resent(
    trading_desk: TradingDesk, trader: Membership, exchange_sandbox: Any
) -> None:
    exchange_sandbox.set_faults(
        [{"kind": "http_5xx", "endpoint": "AddOrder", "probability": 1.0, "count": 1}]
    )
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    assert order.operation is not None
    order.operation.refresh_from_db()
    assert order.operation.state == State.UNKNOWN

    operation = _reconcile_until_settled(order.operation)

    assert operation.state == State.NOT_PLACED
    order.refresh_from_db()
    assert order.state == OrderState.NOT_PLACED
    assert trading_desk.orders_with(exchange_sandbox, order.cl_ord_id) == 0
    assert Operation.objects.filter(kind=Kind.ADD_ORDER).count() == 1  # nothing resent

    again = services.order_resubmit(membership=trader, order=order)

    assert again.resubmission_of == order
    assert again.cl_ord_id != order.cl_ord_id
    again.refresh_from_db()
    assert again.state == OrderState.OPEN
    assert trading_desk.orders_with(exchange_sandbox, again.cl_ord_id) == 1

    # A second "Submit again" (double click, another tab) sends nothing more.
    with pytest.raises(ValidationError, match=f"already submitted again as order #{again.pk}"):
        services.order_resubmit(membership=trader, order=order)
    assert Order.objects.filter(resubmission_of=order).count() == 1
    assert Operation.objects.filter(kind=Kind.ADD_ORDER, validate_only=False).count() == 2


def test_a_demoted_traders_queued_order_is_not_sent(
    trading_desk: TradingDesk,
    trader: Membership,
    owner: Membership,
    exchange_sandbox: Any,
    no_session_worker: None,
) -> None:
    from apps.orgs.services.memberships import membership_change_role
    from apps.vault.services import KEY_CANCEL_ONLY, use_label
    from kraken_portal.celery import app

    app.conf.task_always_eager = False  # queued on the broker; no worker takes it
    try:
        order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    finally:
        app.conf.task_always_eager = True
    assert order.operation is not None
    assert order.operation.state == State.PREPARED
    membership_change_role(membership=trader, role="viewer", actor=owner)

    # What the worker would do when it takes the queued task.
    exchange.operation_send(operation_id=order.operation.pk)

    order.refresh_from_db()
    assert order.operation is not None
    assert order.operation.state == State.REJECTED
    assert order.operation.error_message == KEY_CANCEL_ONLY.format(use=use_label("trading"))
    assert order.state == OrderState.REJECTED
    assert trading_desk.orders_with(exchange_sandbox, order.cl_ord_id) == 0
    app.control.purge()


def test_a_cancel_only_key_is_revoked_once_its_member_has_nothing_open(
    trading_desk: TradingDesk, trader: Membership, owner: Membership, exchange_sandbox: Any
) -> None:
    from apps.orgs.services.memberships import membership_change_role

    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    order.refresh_from_db()
    membership_change_role(membership=trader, role="viewer", actor=owner)
    trader.refresh_from_db()
    key = Credential.objects.get(pk=trading_desk.credential.pk)
    assert key.status == Credential.Status.CANCEL_ONLY

    assert outcomes.cancel_only_keys_revoke() == 0  # an order of theirs is still open
    with pytest.raises(ValidationError):
        services.order_amend(membership=trader, order=order, price="1002")
    services.order_cancel(membership=trader, order=order)  # the cancel-only key still cancels

    key.refresh_from_db()
    assert key.status == Credential.Status.REVOKED
    assert key.status_reason == outcomes.CANCEL_ONLY_REVOKED


def test_an_order_queued_before_the_kill_switch_is_not_sent_after_it(
    trading_desk: TradingDesk,
    trader: Membership,
    owner: Membership,
    exchange_sandbox: Any,
    no_session_worker: None,
) -> None:
    from kraken_portal.celery import app

    app.conf.task_always_eager = False  # queued on the broker; no worker takes it
    try:
        order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    finally:
        app.conf.task_always_eager = True
    services.kill_switch_activate(membership=owner, cancel_all=False)

    assert order.operation_id is not None
    exchange.operation_send(operation_id=order.operation_id)

    order.refresh_from_db()
    assert order.operation is not None
    assert order.operation.state == State.REJECTED
    assert order.operation.error_message == services.HALTED_AT_SEND
    assert order.state == OrderState.REJECTED
    assert trading_desk.orders_with(exchange_sandbox, order.cl_ord_id) == 0
    app.control.purge()
