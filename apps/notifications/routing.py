from typing import Any

from django.urls import path

from apps.notifications.consumers import LiveConsumer

websocket_urlpatterns: list[Any] = [path("ws/o/<slug:org>/live/", LiveConsumer.as_asgi())]
