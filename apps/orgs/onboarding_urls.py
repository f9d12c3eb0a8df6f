from typing import Any

app_name = "onboarding"
urlpatterns: list[Any] = []
