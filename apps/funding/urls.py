from django.urls import URLPattern, URLResolver, path

from apps.funding import views

app_name = "funding"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.withdrawal_list_view, name="home"),
    path("addresses/", views.address_book_view, name="address-book"),
    path("addresses/request/", views.address_request_view, name="address-request"),
    path("addresses/<int:pk>/remove/", views.address_remove_view, name="address-remove"),
    path("withdrawals/", views.withdrawal_list_view, name="withdrawal-list"),
    path("withdrawals/new/", views.withdrawal_new_view, name="withdrawal-new"),
    path("withdrawals/<int:pk>/", views.withdrawal_detail_view, name="withdrawal-detail"),
    path("withdrawals/<int:pk>/cancel/", views.withdrawal_cancel_view, name="withdrawal-cancel"),
    path("transfers/", views.transfer_list_view, name="transfer-list"),
]
