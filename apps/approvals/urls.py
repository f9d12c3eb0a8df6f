from django.urls import path

from apps.approvals import views

app_name = "approvals"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("<int:pk>/", views.request_detail, name="request-detail"),
    path("<int:pk>/decide/", views.request_decide, name="request-decide"),
    path("<int:pk>/cancel/", views.request_cancel, name="request-cancel"),
    path("policies/", views.policy_list, name="policy-list"),
    path("policies/<str:kind>/", views.policy_edit, name="policy-edit"),
]
