"""The header's socket on every organization page: the member's live parts (unread badge, the
approvals count, a request's timeline) arrive here as member events (apps.core.realtime)."""

from __future__ import annotations

from channels.db import database_sync_to_async

from apps.core.consumers import LatestWinsConsumer
from apps.notifications.live import live_snapshot
from apps.orgs.consumers import MemberConsumer


class LiveConsumer(MemberConsumer, LatestWinsConsumer):
    async def joined(self) -> None:
        self.start_sending()
        if self.membership is not None:
            self.enqueue_snapshot(await database_sync_to_async(live_snapshot)(self.membership))
