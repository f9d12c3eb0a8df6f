from django.urls import URLPattern, URLResolver, path

from apps.trading import views
from apps.trading.urls_blotter import blotter_urlpatterns

app_name = "trading"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.desk_view, name="desk"),
    path("ticket/check/", views.ticket_check_view, name="ticket-check"),
    path("orders/", views.order_submit_view, name="order-submit"),
    path("preflight/", views.preflight_view, name="preflight"),
    path("preflight/<int:pk>/", views.preflight_result_view, name="preflight-result"),
    path("orders/<int:pk>/", views.order_detail_view, name="order-detail"),
    path("orders/<int:pk>/amend/", views.order_amend_view, name="order-amend"),
    path("orders/<int:pk>/cancel/", views.order_cancel_view, name="order-cancel"),
    path("orders/<int:pk>/resubmit/", views.order_resubmit_view, name="order-resubmit"),
    path("cancel-mine/", views.cancel_mine_view, name="cancel-mine"),
    path("dead-mans-switch/", views.dead_mans_switch_view, name="dead-mans-switch"),
    path("kill-switch/", views.kill_switch_view, name="kill-switch"),
    path("kill-switch/release/", views.kill_switch_release_view, name="kill-switch-release"),
    *blotter_urlpatterns,
]
