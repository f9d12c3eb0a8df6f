"""The streams pick up accounts and keys without a restart, and publish an account's events
only to its own organization's members."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest
from channels.layers import get_channel_layer

from apps.core.groups import member_group
from apps.exchange.models import ExchangeOrder
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.vault.services import credential_revoke
from tests.exchange.conftest import eventually, make_reader
from tests.exchange.test_streams import closed_order, market_buy
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, master_account

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def test_a_new_designated_key_is_picked_up_and_a_revoked_one_dropped_without_restart(
    owner: Membership, run_streams: Any, exchange_sandbox: Any
) -> None:
    streams = run_streams()
    eventually(lambda: streams.process is not None and streams.process.state == "active")
    assert streams.process.streams == {}  # no account has a designated key yet
    reader = make_reader(exchange_sandbox, owner)
    streams.wait_subscribed(reader.account.pk)
    txid = market_buy(reader, exchange_sandbox)
    eventually(lambda: closed_order(reader, txid))
    # The key is revoked: its connection ends (and nothing opens the key again).
    credential_revoke(credential=reader.credential, actor=owner)
    eventually(lambda: streams.stream(reader.account.pk) is None)
    # A new designated key on the same account: connected again, with the new key.
    again = make_reader(exchange_sandbox, owner, account=reader.account)
    stream = streams.wait_subscribed(reader.account.pk)
    assert stream.credential_id == again.credential.pk


class GroupListener:
    """Channel-layer groups listened to from a thread of their own (the streams publish from
    theirs); keeps every fragment each group was sent."""

    def __init__(self, groups: list[str]) -> None:
        self.groups = groups
        self.parts: dict[str, list[str]] = {group: [] for group in groups}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> GroupListener:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        layer: Any = get_channel_layer()
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks = []
        for group in self.groups:
            channel = await layer.new_channel()
            await layer.group_add(group, channel)
            tasks.append(asyncio.create_task(self._collect(layer, group, channel)))
        self._ready.set()
        await self._stop.wait()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _collect(self, layer: Any, group: str, channel: str) -> None:
        while True:
            message = await layer.receive(channel)
            self.parts[group].extend(element for element, _ in message.get("parts") or [])


def test_an_accounts_events_reach_only_its_own_organizations_members(
    owner: Membership, run_streams: Any, exchange_sandbox: Any
) -> None:
    reader = make_reader(exchange_sandbox, owner)
    # Someone who belongs to both organizations, and the other organization's owner.
    shared = UserFactory(email="shared@both.test")
    MembershipFactory(org=owner.org, user=shared, role=Role.VIEWER)
    other_org = OrganizationFactory(name="Other Fund", slug="other")
    other_owner = MembershipFactory(org=other_org, role=Role.OWNER)
    MembershipFactory(org=other_org, user=shared, role=Role.OWNER)
    removed = MembershipFactory(org=owner.org, role=Role.TRADER, status=Membership.Status.REMOVED)
    # The other organization streams an account of its own too.
    other = make_reader(exchange_sandbox, other_owner, account=master_account(other_org))
    groups = {
        "owner": member_group(owner.org_id, owner.user_id),
        "shared here": member_group(owner.org_id, shared.pk),
        "shared there": member_group(other_org.pk, shared.pk),
        "other owner": member_group(other_org.pk, other_owner.user_id),
        "removed": member_group(owner.org_id, removed.user_id),
    }
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    streams.wait_subscribed(other.account.pk)
    with GroupListener(list(groups.values())) as listener:
        txid = market_buy(reader, exchange_sandbox)
        order = eventually(lambda: closed_order(reader, txid))
        element = f"exchange-order-{order.pk}"
        eventually(lambda: element in listener.parts[groups["owner"]])
        eventually(lambda: element in listener.parts[groups["shared here"]])
        eventually(
            lambda: f"exchange-balance-{reader.account.pk}-BTC" in listener.parts[groups["owner"]]
        )
        eventually(
            lambda: any(p.startswith("exchange-fill-") for p in listener.parts[groups["owner"]])
        )
    # Nothing of it reached the other organization, not even the member of both, nor the
    # removed member.
    assert listener.parts[groups["shared there"]] == []
    assert listener.parts[groups["other owner"]] == []
    assert listener.parts[groups["removed"]] == []
    assert not ExchangeOrder.objects.filter(account=other.account).exists()
