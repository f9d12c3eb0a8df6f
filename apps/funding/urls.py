from django.urls import URLPattern, URLResolver, path

from apps.funding import views, views_balances

app_name = "funding"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views_balances.balances_view, name="home"),
    path("value.csv", views_balances.value_csv_view, name="value-csv"),
    path(
        "accounts/<int:pk>/refresh/", views_balances.balances_refresh_view, name="balances-refresh"
    ),
    path("deposits/", views_balances.deposits_view, name="deposits"),
    path("addresses/", views.address_book_view, name="address-book"),
    path("addresses/request/", views.address_request_view, name="address-request"),
    path("addresses/<int:pk>/remove/", views.address_remove_view, name="address-remove"),
    path("withdrawals/", views.withdrawal_list_view, name="withdrawal-list"),
    path("withdrawals/new/", views.withdrawal_new_view, name="withdrawal-new"),
    path("withdrawals/<int:pk>/", views.withdrawal_detail_view, name="withdrawal-detail"),
    path("withdrawals/<int:pk>/cancel/", views.withdrawal_cancel_view, name="withdrawal-cancel"),
    path("transfers/", views.transfer_list_view, name="transfer-list"),
]
