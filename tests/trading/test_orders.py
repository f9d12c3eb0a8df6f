"""Orders as exchange operations against the real sandbox (tasks run eagerly on commit): the
ticket's rules and the limits run on the server, each refusal is audited and explained, an
order is sent once, NOT_PLACED is never resent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.audit.models import AuditRecord
from apps.exchange.models import ExchangeOrder, Kind, Operation, State
from apps.orgs.models import Membership
from apps.trading import rules, services
from apps.trading.models import OrderEvent, OrderState
from tests.trading.conftest import TradingDesk, limit_ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def test_a_traders_limit_order_is_sent_once_with_its_cl_ord_id_and_shows_open(
    trading_desk: TradingDesk, trader: Membership, exchange_sandbox: Any
) -> None:
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))

    order.refresh_from_db()
    assert order.state == OrderState.OPEN
    assert order.placed_by == trader
    assert order.credential == trading_desk.credential
    assert order.operation is not None
    assert order.operation.kind == Kind.ADD_ORDER
    assert order.operation.state == State.DONE
    assert order.cl_ord_id == order.operation.reference["cl_ord_id"]
    assert order.txid == order.operation.result["txid"][0]
    assert order.exchange_order == ExchangeOrder.objects.get(txid=order.txid)
    assert trading_desk.orders_with(exchange_sandbox, order.cl_ord_id) == 1
    kinds = list(order.events.values_list("kind", flat=True))
    assert kinds == [OrderEvent.Kind.SUBMITTED, OrderEvent.Kind.PLACED]
    assert AuditRecord.objects.filter(action="trading.order.submitted", target_id=str(order.pk))


def refused(membership: Membership, ticket: rules.Ticket) -> dict[str, list[str]]:
    with pytest.raises(services.OrderRefused) as error:
        services.order_submit(membership=membership, ticket=ticket)
    return error.value.check.errors


def audited_refusals(org: Any) -> list[dict[str, Any]]:
    return [
        record.detail
        for record in AuditRecord.objects.filter(org=org, action="trading.order.refused")
    ]


def test_a_quote_quantity_is_converted_to_base_rounded_down_to_the_lot(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    # 100 USD at 3000 is 0.0333333333… BTC: cut to the pair's 8 lot decimals, never up.
    order = services.order_submit(
        membership=trader,
        ticket=limit_ticket(
            trading_desk.account, quantity=Decimal("100"), quantity_in="quote", price="3000"
        ),
    )

    assert order.volume == Decimal("0.03333333")
    assert order.quote_quantity == Decimal("100")
    assert not order.viqc
    assert order.operation is not None
    assert order.operation.params["volume"] == "0.03333333"
    assert "viqc" not in order.operation.params.get("oflags", "")


def test_a_market_buy_in_quote_is_sent_with_viqc(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    order = services.order_submit(
        membership=trader,
        ticket=limit_ticket(
            trading_desk.account,
            order_type="market",
            price="",
            quantity=Decimal("50"),
            quantity_in="quote",
        ),
    )

    assert order.viqc
    assert order.volume is None
    assert order.operation is not None
    assert order.operation.params["oflags"] == "viqc"
    assert order.operation.params["volume"] == "50"
    order.refresh_from_db()
    assert order.state in (OrderState.OPEN, OrderState.FILLED)


@pytest.mark.parametrize("role", ["viewer", "treasurer", "approver"])
def test_roles_without_trade_cannot_place_orders(
    role: str, trading_desk: TradingDesk, request: pytest.FixtureRequest
) -> None:
    member: Membership = request.getfixturevalue(role)

    errors = refused(member, limit_ticket(trading_desk.account))

    assert rules.NOT_A_TRADER in errors["__all__"]
    assert not Operation.objects.exists()
    assert audited_refusals(member.org)[-1]["reasons"]["__all__"][0] == rules.NOT_A_TRADER


def test_a_trader_cannot_trade_with_another_members_key(
    trading_desk: TradingDesk, org: Any
) -> None:
    from tests.factories import MembershipFactory, UserFactory

    # A second trader, without a key of their own on the account where the first trader and
    # the owner (designated) have theirs.
    other = MembershipFactory(org=org, role="trader", user=UserFactory(email="t2@acme.test"))

    errors = refused(other, limit_ticket(trading_desk.account))

    assert errors["account"] == [rules.NO_OWN_KEY.format(account=trading_desk.account.label)]
    assert not Operation.objects.exists()


def test_the_kill_switch_refuses_new_orders_with_a_clear_message_and_audits_it(
    trading_desk: TradingDesk, trader: Membership, owner: Membership
) -> None:
    switch = services.kill_switch_activate(membership=owner, cancel_all=False)

    errors = refused(trader, limit_ticket(trading_desk.account))

    assert any(m.startswith("Trading is halted") for m in errors["__all__"])
    assert not Operation.objects.filter(kind=Kind.ADD_ORDER).exists()
    assert AuditRecord.objects.filter(action="trading.kill_switch.activated", org=owner.org)
    assert "__all__" in audited_refusals(owner.org)[-1]["reasons"]

    services.kill_switch_release(membership=owner)
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    assert switch.pk
    assert order.pk


def test_only_owners_and_admins_hold_the_kill_switch(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.kill_switch_activate(membership=trader, cancel_all=True)


def test_the_kill_switch_cancels_every_order_on_the_account_through_the_designated_key(
    trading_desk: TradingDesk, trader: Membership, owner: Membership, exchange_sandbox: Any
) -> None:
    ours = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    # Another program's order on the same account.
    other = trading_desk.look(
        exchange_sandbox,
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01", "price": "900"},
    )
    assert other["txid"]

    switch = services.kill_switch_activate(membership=owner, cancel_all=True)

    operations = list(switch.operations.all())
    assert [o.kind for o in operations] == [Kind.CANCEL_ALL]
    assert operations[0].credential == trading_desk.designated
    assert operations[0].state == State.DONE
    assert trading_desk.look(exchange_sandbox, "OpenOrders")["open"] == {}
    ours.refresh_from_db()
    assert ours.state == OrderState.CANCELED


def test_pair_rules_refuse_below_ordermin_and_off_tick_prices(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    from apps.kraken.models import AssetPair

    pair = AssetPair.objects.get(symbol="BTC/USD")
    tiny = pair.ordermin / 10
    errors = refused(trader, limit_ticket(trading_desk.account, quantity=tiny))
    assert errors["quantity"][0] == rules.BELOW_ORDERMIN.format(
        pair="BTC/USD", ordermin=pair.ordermin.normalize(), base="BTC"
    )
    off_tick = "1000.123456789"
    errors = refused(trader, limit_ticket(trading_desk.account, price=off_tick))
    assert errors["price"][0].startswith("BTC/USD prices move in steps of")
    errors = refused(trader, limit_ticket(trading_desk.account, quantity=Decimal("0.0100000001")))
    assert errors["quantity"] == [
        rules.QUANTITY_DECIMALS.format(pair="BTC/USD", places=pair.lot_decimals, base="BTC")
    ]
    assert not Operation.objects.exists()
    assert len(audited_refusals(trader.org)) == 3


@pytest.mark.parametrize(
    ("system", "ticket_changes", "field", "message"),
    [
        ("maintenance", {}, "__all__", rules.SYSTEM_STATUS["maintenance"]),
        ("cancel_only", {}, "__all__", rules.SYSTEM_STATUS["cancel_only"]),
        ("post_only", {}, "post_only", rules.SYSTEM_STATUS["post_only"]),
    ],
)
def test_krakens_system_status_refuses_what_it_must(
    system: str,
    ticket_changes: dict[str, Any],
    field: str,
    message: str,
    trading_desk: TradingDesk,
    trader: Membership,
    market_keys: Any,
) -> None:
    market_keys.system(system)

    errors = refused(trader, limit_ticket(trading_desk.account, **ticket_changes))

    assert message in errors[field]
    assert not Operation.objects.exists()


def test_a_post_only_limit_order_passes_in_post_only(
    trading_desk: TradingDesk, trader: Membership, market_keys: Any
) -> None:
    market_keys.system("post_only")

    order = services.order_submit(
        membership=trader, ticket=limit_ticket(trading_desk.account, post_only=True)
    )

    assert order.operation is not None
    assert order.operation.params["oflags"] == "post"


@pytest.mark.parametrize(
    ("status", "order_type", "field"),
    [
        ("limit_only", "market", "order_type"),
        ("cancel_only", "limit", "pair"),
        ("reduce_only", "limit", "pair"),
        ("maintenance", "limit", "pair"),
    ],
)
def test_a_pairs_status_refuses_what_it_must(
    status: str,
    order_type: str,
    field: str,
    trading_desk: TradingDesk,
    trader: Membership,
    market_keys: Any,
) -> None:
    market_keys.pair("BTC/USD", status)
    price = "" if order_type == "market" else "1000"

    errors = refused(trader, limit_ticket(trading_desk.account, order_type=order_type, price=price))

    assert rules.PAIR_STATUS[status].format(pair="BTC/USD") in errors[field]
