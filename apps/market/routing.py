from typing import Any

from django.urls import path

from apps.market.consumers import MarketConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/o/<slug:org>/markets/", MarketConsumer.as_asgi()),
    path("ws/o/<slug:org>/markets/<str:symbol>/", MarketConsumer.as_asgi()),
]
