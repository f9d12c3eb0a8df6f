from typing import Any

from django.urls import path

from apps.exchange.consumers import OperationsConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/o/<slug:org>/operations/", OperationsConsumer.as_asgi()),
]
