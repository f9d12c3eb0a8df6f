from typing import Any

app_name = "market"
urlpatterns: list[Any] = []
