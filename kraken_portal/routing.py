"""WebSocket routes of every app, gathered in one place."""

from __future__ import annotations

from typing import Any

from apps.core.routing import websocket_urlpatterns as core_ws
from apps.market.routing import websocket_urlpatterns as market_ws
from apps.notifications.routing import websocket_urlpatterns as notifications_ws

websocket_urlpatterns: list[Any] = [*core_ws, *market_ws, *notifications_ws]
