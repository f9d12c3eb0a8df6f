from django.urls import path

from apps.exchange import views

app_name = "exchange"
urlpatterns = [
    path("", views.operation_list_view, name="operation-list"),
    path("<int:pk>/reconcile/", views.operation_reconcile_view, name="operation-reconcile"),
]
