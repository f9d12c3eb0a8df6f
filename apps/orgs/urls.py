from django.urls import path

from apps.orgs import views

app_name = "orgs"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
