from django.urls import URLPattern, URLResolver, path

from apps.staking import views

app_name = "staking"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.overview_view, name="overview"),
    path("strategies/", views.strategies_view, name="strategies"),
    path("requests/new/", views.request_create_view, name="request-create"),
    path("requests/cancel/", views.request_cancel_view, name="request-cancel"),
]
