"""Bases for every WebSocket consumer.

`SessionConsumer`: signed in, and open no longer than the sign-in session that opened it. Who
may open which socket (membership, capability) is decided by subclasses in higher layers
(apps.orgs.consumers.MemberConsumer), through `authorise()`.

`LatestWinsConsumer`: a live page's socket with a bounded, latest-wins buffer. Every batch
carries pre-rendered HTML parts `[(element_id, html), ...]`; the consumer never renders.
Incoming parts replace any unsent part with the same element id (latest wins), and a sender
task per socket drains the buffer in one frame (a subclass may split it, see `frames()`), so
a slow client only delays itself: nothing upstream ever waits on its network. A client whose
buffer grows past MAX_PENDING parts, or whose last send has been stuck for MAX_SEND_STALL
seconds, is closed with 1013 ("try again later"), which htmx's ws extension answers by
reconnecting. Private events sent to a group the socket joined use the `fragments` message
type and slot straight in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase

from apps.core.groups import session_group, user_group
from apps.core.realtime import CLOSE_CODES, CLOSE_FORBIDDEN, CLOSE_SIGNED_OUT
from apps.core.sessions import session_is_idle, session_last_seen

__all__ = ["LatestWinsConsumer", "SessionConsumer"]

# The session is re-read this long after the moment it would go idle, so a request made just
# before that moment has been saved, even a slow one.
SESSION_RECHECK_SLACK = 5.0
# "Internal error": htmx reconnects after it.
CLOSE_SERVER_ERROR = 1011
# "Try again later": a client too far behind reconnects and gets a fresh snapshot.
CLOSE_TRY_AGAIN = 1013
MAX_PENDING = 200
MAX_SEND_STALL = 10.0
logger = logging.getLogger(__name__)


@database_sync_to_async
def stored_session(session_key: str) -> dict[str, Any]:
    """The session as stored now: empty once it was signed out, flushed or has expired."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return dict(store.load())


class SessionConsumer(AsyncWebsocketConsumer):
    """Accepts only signed-in users whose session is live and whom `authorise()` admits.

    Every socket joins the groups `authorise()` returns, the user's private group and its
    session's group (signing out closes it). A socket is only as good as its session: one
    that has gone idle (no page request for SESSION_IDLE_TIMEOUT, the same rule pages follow)
    is refused, and an open one is closed with CLOSE_SIGNED_OUT when the session goes idle,
    is signed out or expires. Subclasses add their own groups in `joined()`.
    """

    async def authorise(self, user: Any, session: SessionBase) -> list[str] | None:
        """The groups this socket joins besides the user's and the session's, or None to
        refuse it with CLOSE_FORBIDDEN. The base admits any signed-in user."""
        return []

    async def connect(self) -> None:
        user = self.scope.get("user")
        session = self.scope.get("session")
        if user is None or not user.is_authenticated or session is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        now = time.time()
        if session_is_idle(session, now=now):
            # The next page request would sign this session out; the socket does not outlive it.
            await self._refuse(CLOSE_SIGNED_OUT)
            return
        groups = await self.authorise(user, session)
        if groups is None:
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.private_groups = [
            *groups,
            user_group(user.pk),
            session_group(session.session_key),
        ]
        for group in self.private_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        # What authorise() read may be stale: a removal or role change that committed and
        # published before the groups were joined reached nobody (the layer keeps no messages
        # for late joiners), so the subclass looks once more now they are, before accepting.
        code = await self.recheck_after_join(user, session)
        if code is not None:
            await self._refuse(code)
            return
        await self.accept()
        # A sign-out between the handshake and joining the session's group closed nothing (the
        # layer keeps no messages for late joiners): look at the session once more.
        if (await stored_session(session.session_key)).get(SESSION_KEY) != str(user.pk):
            await self.close(code=CLOSE_SIGNED_OUT)
            return
        await self.joined()
        # Started last, so a joined() that fails leaves no task behind (disconnect() would
        # not run to cancel it).
        self._session_watch = asyncio.create_task(
            self._watch_session(
                session.session_key, str(user.pk), session_last_seen(session, default=now)
            )
        )

    async def recheck_after_join(self, user: Any, session: SessionBase) -> int | None:
        """Called once the socket has joined its groups, before it is accepted: the close code if
        what authorise() decided no longer holds, else None. The base has nothing to re-read."""
        return None

    async def joined(self) -> None:
        """Hook for subclasses: join more groups, send a snapshot."""

    async def _refuse(self, code: int) -> None:
        """Accept only to close with `code`. A refused handshake reaches the browser as 1006,
        which htmx answers by retrying for ever; a close code lets the page stop and say why.
        Nothing is sent in between. (Anonymous sockets are still refused at the handshake.)"""
        await self.accept()
        await self.close(code=code)

    async def _watch_session(self, session_key: str, user_id: str, last_seen: float) -> None:
        """Sleep until the session would go idle, then look again: a member who keeps using
        the portal costs one session read per idle period, an idle one is closed."""
        try:
            while True:
                deadline = last_seen + settings.SESSION_IDLE_TIMEOUT
                await asyncio.sleep(max(deadline - time.time(), 0) + SESSION_RECHECK_SLACK)
                stored = await stored_session(session_key)
                if stored.get(SESSION_KEY) != user_id:
                    break  # signed out, flushed or expired
                # Nothing newer recorded: the last time this socket knew of still stands.
                last_seen = session_last_seen(stored, default=last_seen)
                if time.time() - last_seen > settings.SESSION_IDLE_TIMEOUT:
                    break
        except Exception:
            # The session could not be read: a socket nobody can vouch for closes, and the
            # page reconnects (1011) to be judged afresh.
            logger.warning("socket session check failed; closing the socket", exc_info=True)
            await self.close(code=CLOSE_SERVER_ERROR)
            return
        await self.close(code=CLOSE_SIGNED_OUT)

    async def disconnect(self, code: int) -> None:
        watch = getattr(self, "_session_watch", None)
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
        for group in getattr(self, "private_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def session_close(self, event: dict[str, Any]) -> None:
        """Sent to a member's, user's or session's group when what authorised the socket has
        changed: removal, role change, 2FA removed, signed out. The code tells the page
        whether to reconnect (see apps.core.realtime)."""
        code = event.get("code")
        await self.close(code=code if code in CLOSE_CODES else CLOSE_FORBIDDEN)


class LatestWinsConsumer(SessionConsumer):
    """A socket that sends pre-rendered fragments through a bounded, latest-wins buffer.

    Subclasses call `start_sending()` once joined, and feed the buffer with `enqueue()` (or
    `fragments` messages from the channel layer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._send_started: float | None = None
        self._closing = False

    def start_sending(self) -> None:
        self._sender = asyncio.create_task(self._send_loop())

    async def fragments(self, event: dict[str, Any]) -> None:
        """Channel-layer handler (private groups): the same buffer as every other batch."""
        self.enqueue(event["parts"])

    def enqueue_snapshot(self, parts: Iterable[tuple[str, str]]) -> None:
        """Queue stored parts, except where a live part that arrived meanwhile (newer than
        the stored one) is already waiting."""
        for element, html in parts:
            self._pending.setdefault(element, html)
        self._wake.set()

    def enqueue(self, parts: list[Any]) -> None:
        """Queue pre-rendered parts, newest per element id; never waits on the network."""
        if self._closing:
            return
        stalled = self._send_started is not None and (
            time.monotonic() - self._send_started > MAX_SEND_STALL
        )
        pending = self._pending
        for element, html in parts:
            pending.pop(element, None)
            pending[element] = html
        if stalled or len(pending) > MAX_PENDING:
            # Too far behind: drop the socket; the browser reconnects and gets a fresh snapshot.
            self._closing = True
            pending.clear()
            task = asyncio.create_task(self.close(code=CLOSE_TRY_AGAIN))
            self._closer = task  # keep a reference until it has run
            return
        self._wake.set()

    def frames(self, parts: Iterable[str]) -> list[str]:
        """The buffered parts as WebSocket frames: one. A subclass whose parts cannot be
        parsed as one piece of HTML (table rows beside other elements) splits them."""
        return ["".join(parts)]

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                continue
            frames = self.frames(self._pending.values())
            self._pending.clear()
            self._send_started = time.monotonic()
            try:
                for frame in frames:
                    await self.send(text_data=frame)
            except Exception:
                return  # the socket is gone; disconnect() tidies up
            self._send_started = None

    async def disconnect(self, code: int) -> None:
        sender = getattr(self, "_sender", None)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
        await super().disconnect(code)
