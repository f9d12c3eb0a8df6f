from typing import Any

app_name = "vault"
urlpatterns: list[Any] = []
