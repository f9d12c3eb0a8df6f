"""The Operations page's socket: owners and admins of the URL's organization receive the
operation cards apps.exchange.live sends to their member group."""

from __future__ import annotations

from apps.core.consumers import LatestWinsConsumer
from apps.orgs.consumers import MemberConsumer
from apps.orgs.permissions import Capability


class OperationsConsumer(MemberConsumer, LatestWinsConsumer):
    capability = Capability.MANAGE_OPERATIONS

    async def joined(self) -> None:
        self.start_sending()
