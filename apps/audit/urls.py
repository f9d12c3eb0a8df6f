from django.urls import path

from apps.audit import views

app_name = "audit"
urlpatterns = [
    path("", views.record_list, name="record-list"),
    path("export.csv", views.record_export, name="record-export"),
]
