"""The ASGI application `asgi_bench.py` serves: the portal's Django + Channels stack, one route.

The portal's own consumers join per-organization and per-symbol groups through the Redis
channel layer; this consumer does the same with one group, so the benchmark measures the
server and the layer rather than the portal's business code. The socket goes through the same
origin check and session middleware as the portal's sockets.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.base")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = os.environ.get("BENCH_GROUP", "bench.broadcast")


class BroadcastConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def bench_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/bench/", BroadcastConsumer.as_asgi())]))
        ),
    }
)
