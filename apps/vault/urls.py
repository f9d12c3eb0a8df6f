from django.urls import path

from apps.vault import views

app_name = "vault"
urlpatterns = [
    path("", views.credential_list_view, name="credential-list"),
    path("new/", views.credential_create_view, name="credential-create"),
    path("<int:pk>/", views.credential_detail_view, name="credential-detail"),
    path("<int:pk>/test/", views.credential_test_view, name="credential-test"),
    path("<int:pk>/revoke/", views.credential_revoke_view, name="credential-revoke"),
    path("<int:pk>/delete/", views.credential_delete_view, name="credential-delete"),
    path("<int:pk>/designate/", views.credential_designate_view, name="credential-designate"),
    path("oversight/", views.oversight_list_view, name="oversight"),
    path("oversight/<int:pk>/revoke/", views.oversight_revoke_view, name="oversight-revoke"),
]
