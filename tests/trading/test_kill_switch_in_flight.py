"""The kill switch and an order already on its way (issue 11): an order that left before the
halt cannot be called back, so the halt's page says how many were in flight and lists them,
and a "cancel everything" halt issues CancelAll once more, as an exchange operation, after
they settle, so an order that reached Kraken after the first CancelAll is not left open.

Real parts: a Celery worker sends the operations to the sandbox, whose AddOrder answers slowly
(a latency fault applied before the order is taken), so the order is SENDING when the owner
halts; whether the halt's CancelAll or the order reaches Kraken first, nothing is left open."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.services import STEP_UP_SESSION_KEY
from apps.exchange.models import Kind, Operation, State
from apps.orgs.models import Membership
from apps.trading import services
from apps.trading.models import KillSwitch, Order, OrderState
from tests.exchange.conftest import eventually
from tests.plugins.celery_worker import sandbox_environment
from tests.trading.conftest import TradingDesk, limit_ticket
from tests.vault.conftest import KEK_1

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def worker(_celery_worker_pool: Any, exchange_sandbox: Any) -> Any:
    return _celery_worker_pool.get(
        {
            **sandbox_environment(exchange_sandbox),
            "PORTAL_KEYRING": f"k1:{KEK_1}",
            "KRAKEN_TIER": "pro",
            "KRAKEN_HTTP_TIMEOUT": "20",
        }
    )


def test_an_order_in_flight_at_a_cancel_everything_halt_is_listed_and_cancelled_by_a_second_cancel_all(  # noqa: E501
    worker: Any,
    trading_desk: TradingDesk,
    exchange_sandbox: Any,
    owner: Membership,
    trader: Membership,
    client_for: Callable[[Membership], Client],
) -> None:
    exchange_sandbox.set_faults(
        [
            {
                "kind": "latency",
                "endpoint": "AddOrder",
                "latency_ms": 6000,
                "probability": 1.0,
                "count": 1,
            }
        ]
    )
    order = services.order_submit(
        membership=trader, ticket=limit_ticket(trading_desk.account, price="1000")
    )
    assert order.operation is not None
    sent = order.operation.pk
    # SENDING is not yet gone: the worker checks the kill switch once more after it. The order
    # has left when Kraken holds it, i.e. when the slow answer's one activation is used.
    eventually(
        lambda: exchange_sandbox.control("GET", "/sandbox/faults")["rules"][0]["count"] == 0,
        timeout=60,
    )
    assert Operation.objects.get(pk=sent).state == State.SENDING

    switch = services.kill_switch_activate(membership=owner, cancel_all=True, reason="test")
    assert list(switch.in_flight.values_list("pk", flat=True)) == [order.operation_id]
    first_cancel = switch.operations.get()

    # The page: how many were in flight, and which.
    client = client_for(owner)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()
    page = client.get(reverse("trading:kill-switch", kwargs={"org": owner.org.slug}))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-in-flight="1"' in html
    assert "1 order was already on its way to Kraken" in html
    assert f'data-in-flight-operation="{order.operation_id}"' in html
    assert reverse("trading:order-detail", kwargs={"org": owner.org.slug, "pk": order.pk}) in html

    # Whichever reached Kraken first, the portal cannot tell: both settle, then...
    eventually(lambda: Operation.objects.get(pk=first_cancel.pk).state == State.DONE, timeout=60)
    eventually(lambda: Operation.objects.get(pk=sent).state == State.DONE, timeout=60)
    # Then CancelAll once more, as its own exchange operation, and nothing is left open.
    again = eventually(
        lambda: Operation.objects.filter(kind=Kind.CANCEL_ALL).exclude(pk=first_cancel.pk).first(),
        timeout=60,
    )
    eventually(lambda: Operation.objects.get(pk=again.pk).state == State.DONE, timeout=60)
    switch = KillSwitch.objects.get(pk=switch.pk)
    assert switch.reissued == [trading_desk.account.pk]
    assert set(switch.operations.values_list("pk", flat=True)) == {first_cancel.pk, again.pk}
    assert trading_desk.look(exchange_sandbox, "OpenOrders")["open"] == {}
    eventually(lambda: Order.objects.get(pk=order.pk).state == OrderState.CANCELED, timeout=30)
    assert Operation.objects.filter(kind=Kind.CANCEL_ALL).count() == 2  # once more, not more

    page = client.get(reverse("trading:kill-switch", kwargs={"org": owner.org.slug}))
    assert "issued again on 1 account" in page.content.decode()
    exchange_sandbox.clear_faults()


def test_a_halt_with_nothing_in_flight_says_so_and_cancels_once(
    worker: Any,
    trading_desk: TradingDesk,
    exchange_sandbox: Any,
    owner: Membership,
    trader: Membership,
) -> None:
    order = services.order_submit(
        membership=trader, ticket=limit_ticket(trading_desk.account, price="1000")
    )
    eventually(lambda: Order.objects.get(pk=order.pk).state == OrderState.OPEN, timeout=60)
    switch = services.kill_switch_activate(membership=owner, cancel_all=True)
    assert switch.in_flight.count() == 0
    cancel = switch.operations.get()
    eventually(lambda: Operation.objects.get(pk=cancel.pk).state == State.DONE, timeout=60)
    eventually(lambda: Order.objects.get(pk=order.pk).state == OrderState.CANCELED, timeout=30)
    time.sleep(2)  # room for a wrong second CancelAll to appear
    assert Operation.objects.filter(kind=Kind.CANCEL_ALL).count() == 1
    assert KillSwitch.objects.get(pk=switch.pk).reissued == []
