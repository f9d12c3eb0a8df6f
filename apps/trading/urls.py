from django.urls import URLPattern, URLResolver

from apps.trading.urls_blotter import blotter_urlpatterns

app_name = "trading"
urlpatterns: list[URLPattern | URLResolver] = [*blotter_urlpatterns]
