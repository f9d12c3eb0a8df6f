from django.urls import path

from apps.market import views

app_name = "market"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("status/", views.status, name="status"),
    path("layout/", views.layout, name="layout"),
    path("<str:symbol>/", views.pair, name="pair"),
    path("<str:symbol>/watch/", views.watch_add, name="watch-add"),
    path("<str:symbol>/unwatch/", views.watch_remove, name="watch-remove"),
]
